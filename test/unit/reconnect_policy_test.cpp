// The reconnect policy without I/O: which requests are sent again, the backoff schedule over
// a list of addresses, and the give-up deadline.
#include "client/reconnect_policy.hpp"

#include <doctest/doctest.h>

using zproc::detail::is_idempotent;
using zproc::detail::reconnect_policy;
using namespace std::chrono_literals;

namespace {
using clock_type = reconnect_policy::clock;
const clock_type::time_point t0{};  // an arbitrary "now"
}  // namespace

TEST_SUITE("client_algorithms") {
  TEST_CASE("reconnect: reads and watches are sent again, writes never") {
    for (const char* op : {"get", "contains", "size", "keys", "values", "items", "copy",
                           "revision", "at", "read", "history", "ping", "proc_list", "watch"})
      CHECK_MESSAGE(is_idempotent(op), op);
    for (const char* op : {"set", "del", "update", "pop", "popitem", "setdefault", "clear",
                           "replace", "incr", "cas", "append", "txn", "commit", "lock", "unlock",
                           "cancel", "task_submit", "task_take", "task_done", "task_wait",
                           "proc_start", "proc_update", "", "unknown"})
      CHECK_MESSAGE(!is_idempotent(op), op);
  }

  TEST_CASE("reconnect: one address, at once, then pauses doubling up to the maximum") {
    reconnect_policy p({.initial_delay = 50ms, .max_delay = 300ms, .give_up = 10s});
    CHECK_FALSE(p.enabled());  // no address yet
    p.set_addresses({"ipc:///a"});
    REQUIRE(p.enabled());
    p.lost(t0);
    CHECK(p.deadline() == t0 + 10s);
    auto now = t0;
    std::vector<std::chrono::milliseconds> pauses;
    for (int i = 0; i < 6; ++i) {
      auto a = p.next(now);
      REQUIRE(a);
      CHECK(a->index == 0);
      pauses.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(a->at - now));
      now = a->at + 1ms;  // the attempt fails 1 ms later
    }
    CHECK(pauses == std::vector<std::chrono::milliseconds>{0ms, 50ms, 100ms, 200ms, 300ms, 300ms});
    // Success (a reply came): the next loss starts over with an immediate attempt.
    p.connected(0, now);
    p.working();
    p.lost(now);
    auto a = p.next(now);
    REQUIRE(a);
    CHECK(a->at == now);
  }

  TEST_CASE("reconnect: a list is tried in turn from the address lost, a pause per round") {
    reconnect_policy p({.initial_delay = 100ms, .max_delay = 1s, .give_up = 10s});
    p.set_addresses({"a", "b", "c", "b"}, 1);  // duplicates dropped; connected to "b"
    REQUIRE(p.addresses() == std::vector<std::string>{"a", "b", "c"});
    CHECK(p.current_address() == "b");
    p.lost(t0);
    std::vector<std::size_t> order;
    std::vector<std::chrono::milliseconds> pauses;
    auto now = t0;
    for (int i = 0; i < 7; ++i) {
      auto a = p.next(now);
      REQUIRE(a);
      order.push_back(a->index);
      pauses.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(a->at - now));
      now = a->at;
    }
    CHECK(order == std::vector<std::size_t>{1, 2, 0, 1, 2, 0, 1});
    CHECK(pauses == std::vector<std::chrono::milliseconds>{0ms, 0ms, 0ms, 100ms, 0ms, 0ms, 200ms});
    // Failed over to "a" (index 0): the next loss starts there.
    p.connected(0, now);
    CHECK(p.current_address() == "a");
    p.working();  // a reply came on it
    p.lost(now);
    CHECK(p.next(now)->index == 0);
  }

  TEST_CASE("reconnect: a server that accepts and hangs up does not reset the backoff or the deadline") {
    reconnect_policy p({.initial_delay = 100ms, .max_delay = 400ms, .give_up = 2s});
    p.set_addresses({"a"});
    p.lost(t0);
    auto now = t0;
    std::vector<std::chrono::milliseconds> pauses;
    for (;;) {
      auto a = p.next(now);
      if (!a) break;
      pauses.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(a->at - now));
      now = a->at;
      p.connected(a->index, now);  // the hello succeeds...
      now += 5ms;
      p.lost(now);                 // ...and the server hangs up before any reply
      CHECK(p.deadline() == t0 + 2s);
      REQUIRE(pauses.size() < 50);  // it ends: the deadline holds
    }
    CHECK(pauses == std::vector<std::chrono::milliseconds>{0ms, 100ms, 200ms, 400ms, 400ms,
                                                           400ms, 400ms});
  }

  TEST_CASE("reconnect: a connection that got a reply, or lasted, starts a new round") {
    reconnect_policy p({.initial_delay = 100ms, .max_delay = 400ms, .give_up = 2s,
                        .stable_after = 1s});
    p.set_addresses({"a"});
    p.lost(t0);
    p.next(t0);
    p.next(t0);  // the second attempt, after a pause
    p.connected(0, t0 + 100ms);
    p.working();
    p.lost(t0 + 200ms);
    CHECK(p.deadline() == t0 + 200ms + 2s);
    CHECK(p.next(t0 + 200ms)->at == t0 + 200ms);  // at once again
    p.connected(0, t0 + 200ms);
    p.lost(t0 + 1200ms);  // no reply, but it lasted stable_after
    CHECK(p.deadline() == t0 + 1200ms + 2s);
    CHECK(p.next(t0 + 1200ms)->at == t0 + 1200ms);
  }

  TEST_CASE("reconnect: a request lost soon after it was sent counts against max_sends") {
    reconnect_policy p({.stable_after = 1s});
    CHECK(p.settings().max_sends == 3);
    reconnect_policy::sends s;
    reconnect_policy::sent(s, t0);
    p.lost_with(s, t0 + 1s);  // a long watch, lost an hour later: not soon
    CHECK(s.quick_losses == 0);
    for (int i = 0; i < 3; ++i) {
      CHECK(p.may_send_again(s));
      reconnect_policy::sent(s, t0 + 10s * (i + 1));
      p.lost_with(s, t0 + 10s * (i + 1) + 999ms);
    }
    CHECK(s.quick_losses == 3);
    CHECK_FALSE(p.may_send_again(s));
  }

  TEST_CASE("reconnect: nothing starts after the give-up deadline") {
    reconnect_policy p({.initial_delay = 400ms, .max_delay = 10s, .give_up = 1s});
    p.set_addresses({"a"});
    p.lost(t0);
    CHECK(p.next(t0));                 // at once
    CHECK(p.next(t0 + 100ms));         // +400 ms: before the deadline
    CHECK_FALSE(p.next(t0 + 600ms));   // +800 ms would be past it
    CHECK_FALSE(p.next(t0 + 1s));
  }

  TEST_CASE("reconnect: zero delays still pause 1 ms between rounds (no spinning)") {
    reconnect_policy p({.initial_delay = 0ms, .max_delay = 0ms, .give_up = 1s});
    p.set_addresses({"a", "b"});
    p.lost(t0);
    CHECK(p.next(t0)->at == t0);
    CHECK(p.next(t0)->at == t0);        // the next address: at once
    CHECK(p.next(t0)->at == t0 + 1ms);  // a new round
  }

  TEST_CASE("reconnect: a zero give-up disables it") {
    reconnect_policy p({.give_up = 0ms});
    p.set_addresses({"a"});
    CHECK_FALSE(p.enabled());
    p.lost(t0);
    CHECK_FALSE(p.next(t0));
  }

  TEST_CASE("reconnect: 'forever' (milliseconds::max()) neither overflows nor gives up") {
    using ms = std::chrono::milliseconds;
    reconnect_policy p({.initial_delay = 10ms, .max_delay = ms::max() / 2, .give_up = ms::max()});
    p.set_addresses({"a"});
    const auto now = std::chrono::steady_clock::now();
    p.lost(now);
    for (int i = 0; i < 30; ++i) {  // 10 ms doubling: about 62 days by then
      auto a = p.next(now);
      REQUIRE(a);
      CHECK(a->at >= now);
    }
    reconnect_policy q({.initial_delay = 10ms, .max_delay = ms::max(), .give_up = 1h});
    q.set_addresses({"a"});
    q.lost(now);
    for (int i = 0; i < 80; ++i)  // the doubling stops at the maximum, without overflowing
      if (auto a = q.next(now)) CHECK(a->at >= now);
  }
}
