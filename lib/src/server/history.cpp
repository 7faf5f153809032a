#include "server/history.hpp"

#include <stdexcept>

namespace zproc::server_detail {

bool update_record::touches(const std::string& key) const {
  for (const auto& c : changes)
    if (c.key == key) return true;
  return false;
}

std::shared_ptr<const std::string> update_record::packed(bool with_diff) const {
  auto& slot = packed_[with_diff ? 1 : 0];
  auto shared = slot.lock();
  if (!shared) {
    json j = to_json(*this);
    if (with_diff) {
      json set = json::object();
      json del = json::array();
      for (const auto& c : changes) {
        if (c.after) {
          set[c.key] = *c.after;
          // a later change of the same key in this record wins (merged diff)
        } else {
          set.erase(c.key);
          del.push_back(c.key);
        }
      }
      j["d"] = json{{"s", std::move(set)}, {"x", std::move(del)}};
    }
    auto encoded = std::make_shared<std::string>();
    json::to_msgpack(j, nlohmann::detail::output_adapter<char>(*encoded));
    shared = std::move(encoded);
    slot = shared;
  }
  return shared;
}

json to_json(const update_record& r) {
  return json{{"rv", r.revision}, {"t", r.time_us},        {"c", r.client_id},
              {"h", r.handle},    {"id", r.identical}, {"ch", r.changes}};
}

update_record record_from_json(const json& j) {
  update_record r;
  r.revision = j.at("rv").get<std::uint64_t>();
  r.time_us = j.at("t").get<std::int64_t>();
  r.client_id = j.at("c").get<std::uint64_t>();
  r.handle = j.at("h").get<std::uint64_t>();
  r.identical = j.at("id").get<bool>();
  r.changes = j.at("ch").get<std::vector<key_change>>();
  return r;
}

std::size_t approx_size(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return sizeof(json) + v.get_ref<const std::string&>().size();
    case json::value_t::array: {
      std::size_t n = sizeof(json);
      for (const auto& e : v) n += approx_size(e);
      return n;
    }
    case json::value_t::object: {
      std::size_t n = sizeof(json);
      for (const auto& [k, e] : v.items()) n += 48 + k.size() + approx_size(e);
      return n;
    }
    case json::value_t::binary: return sizeof(json) + v.get_binary().size();
    default: return sizeof(json);
  }
}

void history::append(record_ptr r) {
  if (r->revision != next_)
    throw std::logic_error("history: revision " + std::to_string(r->revision) + " after " +
                           std::to_string(next_ - 1));
  next_ = r->revision + 1;
  bytes_ += r->bytes;
  records_.push_back(std::move(r));
  // Keep at least the newest record, whatever its size: a reader one behind can go on.
  while (records_.size() > 1 &&
         (records_.size() > limits_.max_records || bytes_ > limits_.max_bytes)) {
    bytes_ -= records_.front()->bytes;
    records_.pop_front();
  }
}

const record_ptr* history::find(std::uint64_t revision) const noexcept {
  if (records_.empty() || revision < oldest() || revision > newest()) return nullptr;
  return &records_[revision - oldest()];
}

}  // namespace zproc::server_detail
