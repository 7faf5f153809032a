#include "protocol/records.hpp"

#include "protocol/ops.hpp"

#include <cmath>

namespace zproc::protocol {

namespace uf = update_field;

json change_to_wire(const key_change& c) {
  json j{{field::key, c.key}};
  if (c.before) j[uf::before] = *c.before;
  if (c.after) j[uf::after_value] = *c.after;
  return j;
}

key_change change_from_wire(const json& j) {
  key_change c;
  c.key = j.at(field::key).get<std::string>();
  if (auto b = j.find(uf::before); b != j.end()) c.before = *b;
  if (auto a = j.find(uf::after_value); a != j.end()) c.after = *a;
  return c;
}

json changes_to_wire(std::span<const key_change> changes) {
  json out = json::array();
  for (const auto& c : changes) out.push_back(change_to_wire(c));
  return out;
}

std::vector<key_change> changes_from_wire(const json& j) {
  if (!j.is_array()) throw json::type_error::create(302, "changes are not an array", &j);
  std::vector<key_change> out;
  out.reserve(j.size());
  for (const auto& c : j) out.push_back(change_from_wire(c));
  return out;
}

update update_from_wire(const json& r) {
  update u;
  u.revision = r.at(uf::revision).get<std::uint64_t>();
  u.time = std::chrono::system_clock::time_point(
      std::chrono::microseconds(r.at(uf::time).get<std::int64_t>()));
  u.client_id = r.at(uf::client).get<std::uint64_t>();
  u.identical = r.at(uf::identical).get<bool>();
  u.changes = changes_from_wire(r.at(uf::changes));
  return u;
}

}  // namespace zproc::protocol

namespace zproc {

// The user's schema: the C++ member names (docs/guide.md, "One JSON schema").

void to_json(json& j, const key_change& c) {
  j = json{{"key", c.key}};
  if (c.before) j["before"] = *c.before;
  if (c.after) j["after"] = *c.after;
}

void from_json(const json& j, key_change& c) {
  c.key = j.at("key").get<std::string>();
  c.before.reset();
  c.after.reset();
  if (auto b = j.find("before"); b != j.end()) c.before = *b;
  if (auto a = j.find("after"); a != j.end()) c.after = *a;
}

void to_json(json& j, const update& u) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(u.time.time_since_epoch()).count();
  j = json{{"revision", u.revision},
           {"time", static_cast<double>(us) / 1e6},
           {"client_id", u.client_id},
           {"identical", u.identical},
           {"changes", u.changes}};
}

void from_json(const json& j, update& u) {
  u = update{};
  u.revision = j.at("revision").get<std::uint64_t>();
  const double seconds = j.at("time").get<double>();
  u.time = std::chrono::system_clock::time_point(
      std::chrono::microseconds(static_cast<std::int64_t>(std::llround(seconds * 1e6))));
  u.client_id = j.at("client_id").get<std::uint64_t>();
  u.identical = j.at("identical").get<bool>();
  u.changes = j.at("changes").get<std::vector<key_change>>();
}

}  // namespace zproc
