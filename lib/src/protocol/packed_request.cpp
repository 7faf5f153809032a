#include "protocol/packed_request.hpp"

#include "protocol/frame.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/value_check.hpp"

#include <array>

namespace zproc::protocol {

packed_request packed_request::make(detail::op code, std::string_view ns) {
  // {"o": name, "n"} of every op, encoded once.
  static const auto heads = [] {
    std::array<std::string, op_count> all;
    for (std::size_t i = 0; i < op_count; ++i) {
      append_msgpack_string(all[i], field::op);
      append_msgpack_string(all[i], name(static_cast<detail::op>(i)));
      append_msgpack_string(all[i], field::ns);
    }
    return all;
  }();
  packed_request r;
  r.code = code;
  // Room for the usual request (op, namespace, handle, key, a small value) at once.
  r.entries.reserve(48 + ns.size());
  r.entries += heads[index(code)];
  append_msgpack_string(r.entries, ns);
  r.fields = 2;
  if (parks(code)) r.ns = ns;
  return r;
}

void append_entry(std::string& entries, std::string_view key, const nlohmann::json& value,
                  bool& too_deep) {
  // One level for the request's own map.
  if (value.is_structured() && deeper_than(value, max_request_depth - 1)) too_deep = true;
  append_msgpack_string(entries, key);
  append_msgpack(entries, value);
}

void packed_request::add(std::string_view key, const nlohmann::json& value) {
  append_entry(entries, key, value, too_deep);
  ++fields;
}

void packed_request::add_string(std::string_view key, std::string_view value) {
  append_msgpack_string(entries, key);
  append_msgpack_string(entries, value);
  ++fields;
}

void packed_request::add_unsigned(std::string_view key, std::uint64_t value) {
  append_msgpack_string(entries, key);
  append_msgpack_unsigned(entries, value);
  ++fields;
}

void packed_request::add_bool(std::string_view key, bool value) {
  append_msgpack_string(entries, key);
  entries.push_back(value ? '\xc3' : '\xc2');
  ++fields;
}

packed_request packed_request::from(const nlohmann::json& request) {
  packed_request r;
  r.code = op_of(request);
  for (const auto& [k, v] : request.get_ref<const nlohmann::json::object_t&>()) r.add(k, v);
  if (r.code && parks(*r.code))
    if (auto n = request.find(field::ns); n != request.end() && n->is_string())
      r.ns = n->get<std::string>();
  return r;
}

nlohmann::json packed_request::to_json() const {
  std::string bytes;
  append_msgpack_map_header(bytes, fields);
  bytes += entries;
  return decode_msgpack(bytes);
}

std::size_t append_request_frame(std::string& out, const packed_request& r, std::uint64_t id) {
  const std::size_t start = begin_frame(out);
  append_msgpack_map_header(out, r.fields + 1);
  append_msgpack_string(out, field::id);
  append_msgpack_unsigned(out, id);
  out += r.entries;
  return end_frame(out, start);
}

}  // namespace zproc::protocol
