#include "client/reconnect_policy.hpp"

#include "protocol/ops.hpp"

#include <algorithm>

namespace zproc::detail {

bool is_idempotent(std::string_view op) noexcept {
  const auto o = protocol::parse_op(op);  // the list: protocol/ops.hpp
  return o && protocol::idempotent(*o);
}

void reconnect_policy::set_addresses(std::vector<std::string> addresses, std::size_t current) {
  std::vector<std::string> unique;
  std::string current_text = current < addresses.size() ? addresses[current] : std::string();
  for (auto& a : addresses)
    if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(std::move(a));
  addresses_ = std::move(unique);
  auto it = std::find(addresses_.begin(), addresses_.end(), current_text);
  current_ = it == addresses_.end() ? 0 : static_cast<std::size_t>(it - addresses_.begin());
  start_ = current_;
  attempts_ = 0;
}

void reconnect_policy::lost(clock::time_point now) {
  if (in_round_ && now - connected_at_ < config_.stable_after) {
    // The connection made in this round never worked: the round goes on where it was (the
    // next address after it, the backoff as it had grown, the same deadline).
    return;
  }
  in_round_ = true;
  start_ = current_;
  attempts_ = 0;
  // "Forever" (milliseconds::max()) must not overflow the clock's time point.
  deadline_ = config_.give_up >= std::chrono::duration_cast<std::chrono::milliseconds>(
                                     clock::time_point::max() - now)
                  ? clock::time_point::max()
                  : now + config_.give_up;
}

std::chrono::milliseconds reconnect_policy::pause_before_round(unsigned round) const noexcept {
  if (round == 0) return std::chrono::milliseconds(0);
  // At least 1 ms between rounds: a zero initial delay must not spin on refused connects.
  auto pause = std::max(config_.initial_delay, std::chrono::milliseconds(1));
  for (unsigned r = 1; r < round && pause < config_.max_delay; ++r)
    pause = pause > config_.max_delay / 2 ? config_.max_delay : pause * 2;
  return std::max(std::min(pause, config_.max_delay), std::chrono::milliseconds(1));
}

std::optional<reconnect_policy::attempt> reconnect_policy::next(clock::time_point now) {
  if (!enabled()) return std::nullopt;
  const std::size_t n = addresses_.size();
  const unsigned k = attempts_;
  const auto round = static_cast<unsigned>(k / n);
  const auto pause = k % n == 0 ? pause_before_round(round) : std::chrono::milliseconds(0);
  const auto room =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock::time_point::max() - now);
  const auto at = pause >= room ? clock::time_point::max() : now + pause;
  if (at >= deadline_) return std::nullopt;
  ++attempts_;
  return attempt{(start_ + k) % n, at};
}

void reconnect_policy::connected(std::size_t index, clock::time_point now) {
  current_ = index < addresses_.size() ? index : 0;
  connected_at_ = now;
  // attempts_ stays: if this connection does not work, the backoff goes on from there.
}

}  // namespace zproc::detail
