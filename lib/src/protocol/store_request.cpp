#include "protocol/store_request.hpp"

#include "protocol/msgpack.hpp"
#include "protocol/request_reader.hpp"

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
  out = {};
  bool has_ns = false;
  return read_request(payload, out.id, out.code, flat_store_op,
                      [&](std::string_view name, msgpack_reader& r) {
                        if (name == field::ns) {
                          std::string_view text;
                          has_ns = r.string(text);
                          out.ns = text;
                          return has_ns;
                        }
                        if (name == field::key) {
                          std::string_view text;
                          if (!r.string(text)) return false;  // (the json path words it)
                          out.key.emplace(text);
                          return true;
                        }
                        if (name == field::value) return r.value(out.value.emplace(), 1);
                        if (name == field::fallback) return r.value(out.fallback.emplace(), 1);
                        if (name == field::handle) {
                          // (Another type: the json path ignores it; so does it there.)
                          std::uint64_t h = 0;
                          if (!r.unsigned_form(h)) return false;
                          out.handle = h;
                          return true;
                        }
                        // Any other field: the json path (it may mean something not known here).
                        return false;
                      }) &&
         has_ns;
}

}  // namespace zproc::protocol
