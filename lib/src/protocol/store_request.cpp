#include "protocol/store_request.hpp"

#include "protocol/msgpack.hpp"

namespace zproc::protocol {

bool flat_store_op(op o) noexcept {
  switch (o) {
    case op::get:
    case op::set:
    case op::del:
    case op::contains:
    case op::size:
    case op::values:
    case op::update:
    case op::pop:
    case op::popitem:
    case op::setdefault:
    case op::clear:
    case op::copy:
    case op::replace:
    case op::revision:
    case op::incr:
    case op::append: return true;
    default: return false;
  }
}

bool decode_store_request(std::string_view payload, store_request& out) {
  msgpack_reader r(payload);
  std::size_t n = 0;
  if (!r.map_header(n)) return false;
  out = {};
  bool has_op = false, has_ns = false;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.string(name)) return false;
    bool ok = false;
    // (A field given twice: the last stands, as on the json path.)
    if (name == field::id) {
      ok = r.unsigned_integer(out.id);
    } else if (name == field::op) {
      std::string_view text;
      const auto code = r.string(text) ? parse_op(text) : std::nullopt;
      ok = code && flat_store_op(*code);
      if (ok) out.code = *code;
      has_op = ok;
    } else if (name == field::ns) {
      std::string_view text;
      ok = r.string(text);
      out.ns = text;
      has_ns = ok;
    } else if (name == field::key) {
      std::string_view text;
      ok = r.string(text);  // (not text: the json path words the refusal)
      if (ok) out.key.emplace(text);
    } else if (name == field::value) {
      ok = r.value(out.value.emplace(), 1);
    } else if (name == field::fallback) {
      ok = r.value(out.fallback.emplace(), 1);
    } else if (name == field::handle) {
      std::uint64_t h = 0;
      ok = r.unsigned_form(h);  // (another type: the json path ignores it; so does it there)
      if (ok) out.handle = h;
    }
    // Any other field: the json path (it may mean something this reader does not know).
    if (!ok) return false;
  }
  return r.at_end() && has_op && has_ns && out.id > 0;
}

}  // namespace zproc::protocol
