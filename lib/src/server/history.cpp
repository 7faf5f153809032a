#include "server/history.hpp"

#include "protocol/msgpack.hpp"
#include "protocol/records.hpp"

#include "protocol/ops.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace zproc::server_detail {

namespace uf = protocol::update_field;

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
      j[uf::diff] = json{{uf::diff_set, std::move(set)}, {uf::diff_erased, std::move(del)}};
    }
    auto encoded = std::make_shared<std::string>();
    protocol::append_msgpack(*encoded, j);
    shared = std::move(encoded);
    slot = shared;
  }
  return shared;
}

json to_json(const update_record& r) {
  return json{{uf::revision, r.revision}, {uf::time, r.time_us},
              {uf::client, r.client_id},  {uf::handle, r.handle},
              {uf::identical, r.identical}, {uf::changes, protocol::changes_to_wire(r.changes)}};
}

update_record record_from_json(const json& j) {
  update_record r;
  r.revision = j.at(uf::revision).get<std::uint64_t>();
  r.time_us = j.at(uf::time).get<std::int64_t>();
  r.client_id = j.at(uf::client).get<std::uint64_t>();
  r.handle = j.at(uf::handle).get<std::uint64_t>();
  r.identical = j.at(uf::identical).get<bool>();
  auto changes = protocol::changes_from_wire(j.at(uf::changes));
  r.changes.assign(std::make_move_iterator(changes.begin()), std::make_move_iterator(changes.end()));
  r.bytes = record_bytes(r);
  return r;
}

namespace {

/// What glibc's malloc takes for a request of `n` bytes on 64-bit Linux: 8 bytes of header,
/// rounded up to 16, 32 at least; a large block is mmap'ed whole pages.
constexpr std::size_t chunk(std::size_t n) {
  if (n == 0) return 0;
  if (n >= 128 * 1024) return (n + 16 + 4095) & ~std::size_t{4095};
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}

/// The heap bytes of a std::string's characters (none when short enough to live inside it).
std::size_t string_heap(const std::string& s) {
  return s.capacity() > 15 ? chunk(s.capacity() + 1) : 0;
}

}  // namespace

std::size_t heap_bytes(const json& v) {
  switch (v.type()) {
    case json::value_t::string:
      return chunk(sizeof(std::string)) + string_heap(v.get_ref<const std::string&>());
    case json::value_t::array: {
      const auto& a = v.get_ref<const json::array_t&>();
      std::size_t n = chunk(sizeof(json::array_t)) + chunk(a.capacity() * sizeof(json));
      for (const auto& e : a) n += heap_bytes(e);
      return n;
    }
    case json::value_t::object: {
      // std::map: one red-black node (32 bytes of links) per entry, holding key and value.
      constexpr std::size_t node = 32 + sizeof(json::object_t::value_type);
      std::size_t n = chunk(sizeof(json::object_t));
      for (const auto& [k, e] : v.get_ref<const json::object_t&>())
        n += chunk(node) + string_heap(k) + heap_bytes(e);
      return n;
    }
    case json::value_t::binary: {
      const auto& b = v.get_binary();
      return chunk(sizeof(json::binary_t)) + chunk(b.capacity());
    }
    default: return 0;
  }
}

std::size_t record_bytes(const update_record& r) {
  // The record and its control block (one allocation, with room for one change), its slot
  // in the history's deque, and the changes' array if they did not fit there.
  std::size_t n = chunk(sizeof(update_record) + 16) + sizeof(record_ptr);
  if (r.changes.capacity() > r.changes.static_capacity)
    n += chunk(r.changes.capacity() * sizeof(key_change));
  for (const auto& c : r.changes) {
    n += string_heap(c.key);
    if (c.before) n += heap_bytes(*c.before);
    if (c.after) n += heap_bytes(*c.after);
  }
  return n;
}

history::dropped history::append(record_ptr r) {
  if (r->revision != next_)
    throw std::logic_error("history: revision " + std::to_string(r->revision) + " after " +
                           std::to_string(next_ - 1));
  const std::size_t size = r->bytes;
  records_.push_back(std::move(r));  // the only step that may fail: nothing changed then
  next_ = records_.back()->revision + 1;
  bytes_ += size;
  dropped d;
  // Keep at least the newest record, whatever its size: a reader one behind can go on.
  while (records_.size() > 1 &&
         (records_.size() > limits_.max_records || bytes_ > limits_.max_bytes)) {
    const auto one = drop_oldest();
    d.records += one.records;
    d.bytes += one.bytes;
  }
  return d;
}

history::dropped history::drop_oldest() noexcept {
  if (records_.empty()) return {};
  const std::size_t size = records_.front()->bytes;
  bytes_ -= size;
  records_.pop_front();
  return {1, size};
}

const record_ptr* history::find(std::uint64_t revision) const noexcept {
  if (records_.empty() || revision < oldest() || revision > newest()) return nullptr;
  return &records_[revision - oldest()];
}

}  // namespace zproc::server_detail
