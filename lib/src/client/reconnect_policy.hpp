// When and where a client reconnects after it lost its server, and which requests it sends
// again on the new connection. A plain class, no sockets, no timers: the connection
// (client_core.cpp) asks it and arms its timers accordingly (unit-tested in test/unit).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::detail {

/// Whether a request with operation `op` may be sent again on a new connection after the old one
/// broke before its reply came: reads that change nothing on the server (get, contains, size,
/// keys, values, items, copy, revision, at, read, history, ping, proc_list) and watch requests
/// (which carry their cursor). Everything else (writes, locks, commits, task and process-record
/// operations, cancels) is never sent twice: it fails with client_errc::connection_lost.
/// The list is protocol::ops (protocol/ops.hpp).
bool is_idempotent(std::string_view op) noexcept;

/// The reconnect schedule: addresses tried in turn from the one that was lost, the first
/// attempt at once, then the next address at once, and after each full round over the list a
/// pause that doubles from `initial_delay` up to `max_delay`; nothing starts after the give-up
/// deadline (`give_up` after the loss).
class reconnect_policy {
 public:
  using clock = std::chrono::steady_clock;
  struct config {
    std::chrono::milliseconds initial_delay{50};
    std::chrono::milliseconds max_delay{2'000};
    std::chrono::milliseconds give_up{30'000};  ///< zero: never reconnect
    /// A new connection counts as working once a reply came on it, or once it lasted this long.
    /// One lost before that (a server that accepts and hangs up, or dies at once) does not
    /// start a new round: the backoff goes on growing and the give-up deadline stays.
    std::chrono::milliseconds stable_after{1'000};
    /// How many connections a request that may be sent again (is_idempotent) may see lost soon
    /// (within stable_after) after it was sent before it fails with connection_lost instead:
    /// a request that kills the server is not sent to each of its restarts for ever.
    unsigned max_sends = 3;
  };
  struct attempt {
    std::size_t index;        ///< into addresses()
    clock::time_point at;     ///< when to start it
  };

  reconnect_policy() = default;
  explicit reconnect_policy(config c) : config_(c) {}

  /// Whether a lost connection is reconnected at all (give_up > 0 and an address is known).
  bool enabled() const noexcept { return config_.give_up.count() > 0 && !addresses_.empty(); }
  const config& settings() const noexcept { return config_; }

  /// The addresses, in the order they are tried; `current` is the one connected to. Duplicates
  /// are dropped (the first stays).
  void set_addresses(std::vector<std::string> addresses, std::size_t current = 0);
  const std::vector<std::string>& addresses() const noexcept { return addresses_; }
  std::size_t current() const noexcept { return current_; }
  const std::string& current_address() const { return addresses_.at(current_); }

  /// The connection to current_address() broke at `now`: a new round of attempts begins,
  /// unless the connection never worked (see config::stable_after): then the round it ended
  /// goes on (same deadline, the backoff where it was).
  void lost(clock::time_point now);
  /// The give-up deadline of the current round (set by lost()).
  clock::time_point deadline() const noexcept { return deadline_; }
  /// The next attempt, the previous one (if any) having failed at `now`; nullopt when none
  /// would start before the deadline (the caller then waits for it and gives up).
  std::optional<attempt> next(clock::time_point now);
  /// The attempt at `index` succeeded at `now`: it is the current address from now on.
  void connected(std::size_t index, clock::time_point now = {});
  /// A reply came on the current connection: it works (the next loss starts a new round).
  void working() noexcept { in_round_ = false; }
  /// The sends of one request that may be sent again (is_idempotent): when it was last written
  /// to a socket, and how many connections were lost soon (within stable_after) after that.
  struct sends {
    clock::time_point last{};
    unsigned quick_losses = 0;
  };
  /// `s` was written to a socket at `now`.
  static void sent(sends& s, clock::time_point now) noexcept { s.last = now; }
  /// A reply to `s` came and it stays pending (a stream): the server lives with it, so the
  /// connections lost soon after it was sent were not its doing.
  static void answered(sends& s) noexcept { s.quick_losses = 0; }
  /// The connection `s` was last sent on was lost at `now`.
  void lost_with(sends& s, clock::time_point now) const noexcept {
    if (now - s.last < config_.stable_after) ++s.quick_losses;
  }
  /// Whether `s` may go on the next connection (else it fails with connection_lost: a request
  /// that kills the server is not sent to each of its restarts for ever).
  bool may_send_again(const sends& s) const noexcept {
    return s.quick_losses < config_.max_sends;
  }
  /// Attempts made since the last lost().
  unsigned attempts() const noexcept { return attempts_; }

  /// The pause before the first attempt of round `round` (1-based; round 0 has none).
  std::chrono::milliseconds pause_before_round(unsigned round) const noexcept;

 private:
  config config_;
  std::vector<std::string> addresses_;
  std::size_t current_ = 0;
  std::size_t start_ = 0;     // where this round began
  unsigned attempts_ = 0;
  clock::time_point deadline_{};
  bool in_round_ = false;           // lost, and no connection has worked since
  clock::time_point connected_at_{};
};

}  // namespace zproc::detail
