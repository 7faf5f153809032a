#include "protocol/watch_request.hpp"

#include "protocol/msgpack.hpp"
#include "protocol/ops.hpp"
#include "protocol/request_reader.hpp"

#include <utility>

namespace zproc::protocol {

namespace {

/// A flag: true only if it is `true` (any other value counts as absent, as on the json path).
bool read_flag(msgpack_reader& r, bool& out) {
  bool b = false;
  if (r.boolean(b)) {
    out = b;
    return true;
  }
  out = false;
  return r.skip(1);
}

/// A revision: nil (absent) or an unsigned integer; anything else is the json path's to refuse.
bool read_revision(msgpack_reader& r, std::optional<std::uint64_t>& out) {
  if (r.nil()) {
    out.reset();
    return true;
  }
  std::uint64_t v = 0;
  if (!r.unsigned_form(v)) return false;
  out = v;
  return true;
}

/// The flag field called `name`, or nullptr.
bool watch_request::*flag_named(std::string_view name) {
  static constexpr std::pair<const char*, bool watch_request::*> flags[] = {
      {field::exclude, &watch_request::exclude}, {field::identical, &watch_request::identical},
      {field::own, &watch_request::own},         {field::live, &watch_request::live},
      {field::snap, &watch_request::snap},       {field::now, &watch_request::now},
      {field::base, &watch_request::base},       {field::oldest, &watch_request::oldest},
      {field::pin, &watch_request::pin}};
  for (const auto& [n, member] : flags)
    if (name == n) return member;
  return nullptr;
}

}  // namespace

bool decode_watch_request(std::string_view payload, watch_request& out) {
  out = {};
  bool has_ns = false;
  op code = op::watch;
  const bool read = read_request(
      payload, out.id, code, [](op o) { return o == op::watch; },
      [&](std::string_view key, msgpack_reader& r) {
        if (key == field::ns) {
          std::string_view ns;
          has_ns = r.string(ns);
          out.ns = ns;
          return has_ns;
        }
        if (key == field::handle) {
          // (Not an unsigned integer: no handle, as on the json path.)
          if (r.unsigned_form(out.handle)) return true;
          out.handle = 0;
          return r.skip(1);
        }
        if (key == field::keys) {
          std::size_t k = 0;
          bool ok = r.array_header(k);
          out.keys.clear();
          for (std::size_t j = 0; ok && j < k; ++j) {
            std::string_view name;
            ok = r.string(name);
            if (ok) out.keys.emplace_back(name);
          }
          return ok;
        }
        if (key == field::pred) return r.value(out.pred.emplace(), 1);
        if (key == field::max) return read_revision(r, out.max);
        if (key == field::after) return read_revision(r, out.after);
        if (key == field::stream) return r.unsigned_form(out.stream) && out.stream > 0;
        if (bool watch_request::*flag = flag_named(key)) return read_flag(r, out.*flag);
        return r.skip(1);
      });
  if (out.oldest) out.after.reset();  // (an 'after' beside 'oldest' is not read)
  return read && has_ns;
}

}  // namespace zproc::protocol
