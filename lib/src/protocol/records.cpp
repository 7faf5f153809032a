// The wire form of the public record types (zproc/update.hpp), shared by client and server.
#include <zproc/update.hpp>

namespace zproc {

void to_json(json& j, const key_change& c) {
  j = json{{"k", c.key}};
  if (c.before) j["b"] = *c.before;
  if (c.after) j["a"] = *c.after;
}

void from_json(const json& j, key_change& c) {
  c.key = j.at("k").get<std::string>();
  c.before.reset();
  c.after.reset();
  if (auto b = j.find("b"); b != j.end()) c.before = *b;
  if (auto a = j.find("a"); a != j.end()) c.after = *a;
}

void from_json(const json& r, update& u) {
  u = update{};
  u.revision = r.at("rv").get<std::uint64_t>();
  u.time = std::chrono::system_clock::time_point(
      std::chrono::microseconds(r.at("t").get<std::int64_t>()));
  u.client_id = r.at("c").get<std::uint64_t>();
  u.identical = r.at("id").get<bool>();
  u.changes = r.at("ch").get<std::vector<key_change>>();
}

}  // namespace zproc
