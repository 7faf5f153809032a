#include "protocol/target_request.hpp"

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

const char* target_request_error(op code) noexcept {
  return code == op::more ? "more needs the streaming watch's request id ('target') and a "
                            "positive count of replies ('credit')"
                          : "cancel needs the request id to cancel ('target')";
}

}  // namespace zproc::protocol
