#include "protocol/target_request.hpp"

#include "protocol/request_reader.hpp"

namespace zproc::protocol {

std::optional<target_request> read_target_request(const nlohmann::json& request, op code) {
  if (!targets_request(code) || !request.is_object()) return std::nullopt;
  target_request out;
  out.code = code;
  const auto target = request.find(field::target);
  if (target == request.end() || !target->is_number_unsigned()) return std::nullopt;
  out.target = target->get<std::uint64_t>();
  if (code == op::more) {
    const auto credit = request.find(field::credit);
    if (credit == request.end() || !credit->is_number_unsigned()) return std::nullopt;
    out.credit = credit->get<std::uint64_t>();
    if (out.credit == 0) return std::nullopt;
  }
  if (const auto ns = request.find(field::ns); ns != request.end() && ns->is_string())
    out.ns = ns->get<std::string>();
  return out;
}

bool decode_target_request(std::string_view payload, std::uint64_t& id, target_request& out) {
  id = 0;  // (a request without one is refused, whatever the caller held)
  out = target_request{};
  bool has_target = false;
  bool has_credit = false;
  const bool read = read_request(
      payload, id, out.code, [](op o) { return targets_request(o); },
      [&](std::string_view key, msgpack_reader& r) {
        // (Integers in an unsigned form, as json's is_number_unsigned(); the last of a field
        // given twice stands, as on the json path.)
        if (key == field::target) return has_target = r.unsigned_form(out.target);
        if (key == field::credit) return has_credit = r.unsigned_form(out.credit);
        if (key == field::ns) {
          std::string_view ns;
          const char* at = r.position();
          if (r.string(ns)) {
            out.ns = std::string(ns);
            return true;
          }
          if (r.position() != at) return false;  // a string cut short
          out.ns.reset();                         // another type: ignored
          return r.skip(1);
        }
        return false;
      });
  if (!read || !has_target) return false;
  if (out.code == op::more) return has_credit && out.credit > 0;
  out.credit = 0;  // (a cancel's credit means nothing, as on the json path)
  return true;
}

const char* target_request_error(op code) noexcept {
  return code == op::more ? "more needs the streaming watch's request id ('target') and a "
                            "positive count of replies ('credit')"
                          : "cancel needs the request id to cancel ('target')";
}

}  // namespace zproc::protocol
