// Spawned processes: real children (this test binary run again by zproc::init), an embedded
// server, return values, remote exceptions with the throw's stacktrace, crashes, retries,
// nesting, stop, timeouts, and no orphans when the parent is SIGKILLed.
#include "support/transport.hpp"
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <csignal>
#include <fstream>
#include <future>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct point {
  int x = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & x & label;
  }
  bool operator==(const point&) const = default;
};

int add(int a, int b) { return a + b; }
ZPROC_TARGET(add);

std::string greet(zproc::context& ctx, std::string name) {
  ctx.create_state().set("greeted", name);
  return "hello " + name;
}
ZPROC_TARGET(greet);

/// How the child reached the server: its address, and whether it has a token.
std::string how_connected(zproc::context& ctx) {
  ctx.ping();
  return ctx.address() + (ctx.token().empty() ? "" : " with a token");
}
ZPROC_TARGET(how_connected);

point make_point(int x, std::string label) { return {x * 2, label + "!"}; }
ZPROC_TARGET(make_point);

std::vector<int> squares(int n) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(i * i);
  return out;
}
ZPROC_TARGET(squares);

std::int64_t my_pid(zproc::state& st) {
  st.set("child_pid", static_cast<std::int64_t>(::getpid()));
  return ::getpid();
}
ZPROC_TARGET(my_pid);

[[gnu::noinline]] void throw_out_of_cookies(int n) {
  if (n >= 0) throw std::runtime_error("out of cookies");
}
[[gnu::noinline]] void eat_cookies() { throw_out_of_cookies(3); }
ZPROC_TARGET(eat_cookies);

// A target that the optimizer would inline into zproc's runner (invoke_target<>) if it could
// (always_inline; at -O2 small targets were): the crash report must still name it, with its
// file:line (it gave "stacktrace: (none)").
[[gnu::always_inline]] inline void throw_inlined() { throw std::runtime_error("inlined"); }
ZPROC_TARGET(throw_inlined);

// A real fault even under the sanitizers (UBSan would stop at the null store first).
[[gnu::noinline]] __attribute__((no_sanitize("address", "undefined"))) void write_through_null(
    volatile int* p) {
  *p = 42;
}
[[gnu::noinline]] void segfault() { write_through_null(nullptr); }
ZPROC_TARGET(segfault);

// Fails until the namespace's "tries" counter reaches `succeed_at`, each attempt counting.
int flaky(zproc::context& ctx, int succeed_at, bool by_signal) {
  auto st = ctx.create_state();
  const auto tries = st.increment("tries").get<int>();
  if (tries < succeed_at) {
    if (by_signal) write_through_null(nullptr);
    throw std::runtime_error("try " + std::to_string(tries) + " failed");
  }
  return tries;
}
ZPROC_TARGET(flaky);

int not_zero(int x) {
  if (x == 0) throw std::invalid_argument("zero");
  return x;
}
ZPROC_TARGET(not_zero);

int nested(zproc::context& ctx, int depth) {
  ctx.create_state().increment("visits");
  if (depth == 3) return static_cast<int>(::getpid() > 0) * depth;
  return ctx.spawn(nested, depth + 1).wait<int>(20s) + 100;
}
ZPROC_TARGET(nested);

void sleeper(int seconds) { std::this_thread::sleep_for(std::chrono::seconds(seconds)); }
ZPROC_TARGET(sleeper);

void stubborn(zproc::state& st) {
  std::signal(SIGTERM, SIG_IGN);
  st.set("ignoring", true);
  std::this_thread::sleep_for(60s);
}
ZPROC_TARGET(stubborn);

boost::asio::awaitable<int> coroutine_target(int x) { co_return x * 3; }
ZPROC_TARGET(coroutine_target);

zproc::spawn_options quick_retries(std::vector<zproc::retry_condition> on) {
  zproc::spawn_options o;
  o.retry_for = std::move(on);
  o.retry_delay = 10ms;
  return o;
}

// The whole of a /proc file ("" if the process is gone). read(), not a stream: a process that
// ends while it is read fails the read (ESRCH), and libstdc++'s filebuf throws then.
std::string read_proc(pid_t pid, const char* name) {
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/" + name).c_str(), O_RDONLY);
  if (fd < 0) return {};
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return text;
}

bool gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  const std::string line = read_proc(pid, "stat");
  const auto close = line.rfind(')');
  return close == std::string::npos || (close + 2 < line.size() && line[close + 2] == 'Z');
}

// The live (not zombie) processes whose command line contains `marker`.
std::vector<pid_t> processes_with(const std::string& marker) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (const dirent* e = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == ::getpid()) continue;
    const std::string cmdline = read_proc(pid, "cmdline");
    if (cmdline.find(marker) != std::string::npos && !gone(pid)) out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

// Polls until every pid in `pids` is gone (or a zombie), at most `limit`.
bool all_gone_within(const pid_t (&pids)[3], std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (std::all_of(std::begin(pids), std::end(pids), [](pid_t p) { return gone(p); }))
      return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace

TEST_SUITE("process") {
  TEST_CASE("the suite runs on the transport asked for (ZPROC_TEST_TRANSPORT), children too") {
    const char* t = std::getenv("ZPROC_TEST_TRANSPORT");
    const std::string transport = t && *t ? t : "ipc";
    zproc::context ctx(zproc::test::context_options());
    CHECK(ctx.address().rfind(transport + "://", 0) == 0);
    auto p = ctx.spawn(how_connected);
    const std::string child = p.wait<std::string>(20s);
    CHECK(child.rfind(transport + "://", 0) == 0);
    if (transport != "ipc") CHECK(child == ctx.address() + " with a token");
    // The supervisor's records reach the server the same way (what `zproc ps` shows).
    bool recorded = false;
    for (int i = 0; i < 200 && !recorded; ++i) {
      for (const auto& r : zproc::list_processes(ctx.client()))
        recorded = recorded || (r.pid == p.pid() && r.state == "exited");
      if (!recorded) std::this_thread::sleep_for(25ms);
    }
    CHECK(recorded);
  }

  TEST_CASE("a target's return value comes back deserialized, of any serializable type") {
    zproc::context ctx(zproc::test::context_options());
    CHECK(ctx.spawn(add, 2, 3).wait<int>(20s) == 5);
    auto st = ctx.create_state({});
    CHECK(ctx.spawn(greet, "ada").wait<std::string>(20s) == "hello ada");
    CHECK(st.get("greeted") == "ada");  // the child's context shares the namespace
    CHECK(ctx.spawn(make_point, 21, "p").wait<point>(20s) == point{42, "p!"});
    CHECK(ctx.spawn(squares, 5).wait<std::vector<int>>(20s) == std::vector<int>{0, 1, 4, 9, 16});
    auto p = ctx.spawn(my_pid);
    const auto pid = p.wait<std::int64_t>(20s);
    CHECK(pid == p.pid());
    CHECK(st.get("child_pid") == pid);
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());
    CHECK(ctx.spawn(coroutine_target, 5).wait<int>(20s) == 15);
  }

  TEST_CASE("a context forgets processes that ended and that no handle refers to") {
    zproc::context ctx(zproc::test::context_options());
    for (int i = 0; i < 5; ++i) CHECK(ctx.spawn(add, i, i).wait<int>(20s) == 2 * i);
    auto kept = ctx.spawn(add, 1, 1);
    CHECK(kept.wait<int>(20s) == 2);
    // The supervisor lets go of a process a moment after wait() returned: under load the one
    // before may still be held at the next spawn, and forgotten at the one after.
    std::vector<zproc::process> procs;
    for (int i = 0; i < 50; ++i) {
      CHECK(ctx.spawn(add, 2, 2).wait<int>(20s) == 4);
      procs = ctx.processes();
      if (procs.size() == 2) break;
      std::this_thread::sleep_for(50ms);
    }
    REQUIRE(procs.size() == 2);  // `kept`, and the last one (forgotten at the next spawn)
    CHECK(procs[0].pid() == kept.pid());
  }

  TEST_CASE("asking for the wrong type is a clear error, void ignores the value") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(add, 1, 1);
    CHECK_THROWS_AS(p.wait<std::string>(20s), std::invalid_argument);
    CHECK_NOTHROW(p.wait(20s));
  }

  TEST_CASE("an exception in the child is a remote_error with the stacktrace of the throw") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(eat_cookies);
    try {
      p.wait(20s);
      FAIL("no exception");
    } catch (const zproc::remote_error& e) {
      CHECK(e.type() == "std::runtime_error");
      CHECK(e.message() == "out of cookies");
      CHECK(e.pid() == p.pid());
      CHECK(e.target() == "eat_cookies");
      INFO(e.stacktrace());
      // The first frame is the throwing function, not the catch site in zproc's runner.
      CHECK(e.stacktrace().rfind("0# (anonymous namespace)::throw_out_of_cookies(int) at ", 0) == 0);
      CHECK(e.stacktrace().find("throw_out_of_cookies(int) at /") != std::string::npos);
      CHECK(e.crash_report().find("what: std::runtime_error: out of cookies") != std::string::npos);
    }
    CHECK(p.exitcode() == 1);
    // The error_code form: the code, and the same exception in the diagnostics.
    zproc::error_code ec;
    zproc::diagnostics diag;
    p.wait(20s, ec, diag);
    CHECK(ec == zproc::process_errc::remote_exception);
    CHECK(diag.message().find("out of cookies") != std::string::npos);
    CHECK_THROWS_AS(std::rethrow_exception(diag.exception()), zproc::remote_error);
    auto q = ctx.spawn(add, 2, 3);
    CHECK(q.wait<int>(20s, ec, diag) == 5);
    CHECK(!ec);
    CHECK(diag.message().empty());
    CHECK(q.wait<std::string>(20s, ec, diag).empty());  // the wrong type: a code, no throw
    CHECK(ec == zproc::process_errc::wrong_result_type);
  }

  TEST_CASE("a target inlined into zproc's runner keeps its frame in the crash report") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(throw_inlined);
    try {
      p.wait(20s);
      FAIL("no exception");
    } catch (const zproc::remote_error& e) {
      INFO(e.crash_report());
      CHECK(e.message() == "inlined");
      CHECK(e.crash_report().find("stacktrace:\n   (none)") == std::string::npos);
      const std::string first = e.stacktrace().substr(0, e.stacktrace().find('\n'));
      // Named as written (not zproc's runner into which it was inlined), with its file:line.
      CHECK(first.rfind("0# (anonymous namespace)::throw_inlined() at /", 0) == 0);
      CHECK(first.find("process_test.cpp:") != std::string::npos);
    }
  }

  TEST_CASE("a SIGSEGV is a process_wait_error with exit code -11 and a crash report") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(segfault);
    try {
      p.wait(20s);
      FAIL("no exception");
    } catch (const zproc::process_wait_error& e) {
      CHECK(e.exitcode() == -11);
      INFO(e.crash_report());
      CHECK(e.crash_report().find("SIGSEGV") != std::string::npos);
      // The first frame is the faulting function (the signal handler's frames are cut).
      CHECK(e.crash_report().find("   0# (anonymous namespace)::write_through_null(") !=
            std::string::npos);
      CHECK(e.crash_report().find("write_through_null(int volatile*) at /") != std::string::npos);
    }
    CHECK(p.exitcode() == -11);
  }

  TEST_CASE("retries: for an exception type, for a signal, max_retries, retry_args") {
    zproc::context ctx(zproc::test::context_options());
    SUBCASE("exception") {
      ctx.create_state({});
      auto p = ctx.spawn(quick_retries({zproc::retry_on<std::exception>()}), flaky, 3, false);
      CHECK(p.wait<int>(30s) == 3);
      CHECK(p.attempts() == 3);
    }
    SUBCASE("signal") {
      ctx.create_state({});
      auto p = ctx.spawn(quick_retries({zproc::retry_on_signal(SIGSEGV)}), flaky, 2, true);
      CHECK(p.wait<int>(30s) == 2);
      CHECK(p.attempts() == 2);
    }
    SUBCASE("max_retries gives up with the last error") {
      ctx.create_state({});
      auto o = quick_retries({zproc::retry_on<std::runtime_error>()});
      o.max_retries = 2;
      auto p = ctx.spawn(o, flaky, 100, false);
      CHECK_THROWS_WITH_AS(p.wait<int>(30s), doctest::Contains("try 3 failed"), zproc::remote_error);
      CHECK(p.attempts() == 3);
    }
    SUBCASE("an exception not in retry_for is not retried") {
      ctx.create_state({});
      auto p = ctx.spawn(quick_retries({zproc::retry_on<std::logic_error>()}), flaky, 3, false);
      CHECK_THROWS_AS(p.wait<int>(30s), zproc::remote_error);
      CHECK(p.attempts() == 1);
    }
    SUBCASE("stop() during the delay before a retry ends it at once") {
      ctx.create_state({});
      auto o = quick_retries({zproc::retry_on<std::runtime_error>()});
      o.retry_delay = 10min;
      auto p = ctx.spawn(o, flaky, 100, false);
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (!p.exitcode() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(10ms);
      REQUIRE(p.exitcode() == 1);  // the first attempt failed; the retry waits
      auto stopped = std::async(std::launch::async, [&] { p.stop(); });
      REQUIRE(stopped.wait_for(20s) == std::future_status::ready);
      CHECK_THROWS_WITH_AS(p.wait(1s), doctest::Contains("was stopped"), zproc::process_wait_error);
      CHECK(p.attempts() == 1);
    }
    SUBCASE("retry_args") {
      auto o = quick_retries({zproc::retry_on<std::invalid_argument>()});
      o.retry_args = zproc::args(7);
      CHECK(ctx.spawn(o, not_zero, 0).wait<int>(30s) == 7);
      o.retry_args = zproc::args(std::string("seven"));
      CHECK_THROWS_AS(ctx.spawn(o, not_zero, 0), std::invalid_argument);
    }
  }

  TEST_CASE("nested processes three levels deep share the state") {
    zproc::context ctx(zproc::test::context_options());
    auto st = ctx.create_state({{"visits", 0}});
    CHECK(ctx.spawn(nested, 1).wait<int>(30s) == 203);
    CHECK(st.get("visits") == 3);
  }

  TEST_CASE("stop: SIGTERM, and SIGKILL after the grace period") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(sleeper, 60);
    CHECK(p.is_alive());
    CHECK_FALSE(p.exitcode());
    p.stop();
    CHECK(p.exitcode() == -SIGTERM);
    CHECK_THROWS_AS(p.wait(20s), zproc::process_wait_error);

    zproc::spawn_options o;
    o.stop_grace = 300ms;
    auto st = ctx.create_state({});
    auto s = ctx.spawn(o, stubborn);
    st.get_when_available("ignoring", {.timeout = 20s});
    s.stop();
    CHECK(s.exitcode().value_or(0) == -SIGKILL);  // value_or: doctest prints an int
  }

  // Issue 12, item 14: a pidfd event left queued for an attempt that ended completed the wait of
  // the next process started in its reactor slot, and Boost 1.81 then blocked the supervisor's
  // only thread in waitpid() on a live child: stop() sent nothing until the child ended by
  // itself. Here processes end and start all the time while others are stopped: every stop
  // must end the process by its SIGTERM (an 8 s sleeper must not run to its end).
  TEST_CASE("stop under churn: no stop waits for a process that ended or started beside it") {
    zproc::context ctx(zproc::test::context_options());
    std::atomic<bool> done{false};
    std::atomic<int> churn_errors{0};
    std::thread churn([&] {
      while (!done) {
        try {
          ctx.spawn(add, 1, 2).wait<int>(20s);
        } catch (const std::exception&) {
          ++churn_errors;
        }
      }
    });
    zproc::spawn_options o;
    o.stop_grace = 2s;  // generous: a loaded sanitizer build must not need the SIGKILL
    auto slowest = std::chrono::steady_clock::duration::zero();
    int rounds = 0, not_terminated = 0;
    const auto until = std::chrono::steady_clock::now() + 6s;
    while (std::chrono::steady_clock::now() < until && rounds < 400) {
      auto a = ctx.spawn(o, sleeper, 8);
      auto b = ctx.spawn(o, sleeper, 8);
      const auto t0 = std::chrono::steady_clock::now();
      a.stop();
      b.stop();
      slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
      if (a.exitcode() != -SIGTERM) ++not_terminated;
      if (b.exitcode() != -SIGTERM) ++not_terminated;
      ++rounds;
    }
    done = true;
    churn.join();
    INFO("rounds: " << rounds << ", slowest stop: "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()
                    << " ms");
    CHECK(rounds >= 3);
    CHECK(slowest < 4s);  // a stalled supervisor waited for a sleeper's 8 s
    CHECK(not_terminated == 0);  // each ended by the SIGTERM, not by itself or the SIGKILL
    CHECK(churn_errors == 0);
  }

  TEST_CASE("wait with a timeout throws and leaves the process running") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(sleeper, 60);
    CHECK_THROWS_AS(p.wait(100ms), zproc::error);
    CHECK(p.is_alive());
    auto many = ctx.spawn_many(3, {}, sleeper, 60);
    CHECK_THROWS_AS(zproc::wait_all(many, 200ms), zproc::error);
  }

  TEST_CASE("ctx.wait_all() waits for every process, then throws the first failure") {
    zproc::context ctx(zproc::test::context_options());
    auto bad = ctx.spawn(not_zero, 0);      // fails at once
    auto slow = ctx.spawn(sleeper, 1);      // still running when the failure is known
    auto worse = ctx.spawn(eat_cookies);    // a later failure: stays on its handle
    try {
      ctx.wait_all(30s);
      FAIL("ctx.wait_all() dropped the failures");
    } catch (const zproc::remote_error& e) {
      CHECK(e.type().find("invalid_argument") != std::string::npos);
      CHECK(e.message() == "zero");
    }
    CHECK_FALSE(slow.is_alive());  // waited for before throwing
    CHECK(slow.exitcode() == 0);
    CHECK_THROWS_AS(worse.wait(1s), zproc::remote_error);
  }

  TEST_CASE("async_wait keeps its io_context busy, and honours cancellation") {
    zproc::context ctx(zproc::test::context_options());
    auto p = ctx.spawn(sleeper, 1);
    boost::asio::io_context io;
    bool done = false;
    zproc::error_code error = boost::asio::error::would_block;
    p.async_wait(boost::asio::bind_executor(io, [&](zproc::error_code ec) {
      done = true;
      error = ec;
    }));
    io.run();  // must not return before the wait completes (the only work of this io_context)
    CHECK(done);
    CHECK_FALSE(error);

    auto q = ctx.spawn(sleeper, 60);
    boost::asio::cancellation_signal cancel;
    bool aborted = false;
    io.restart();
    q.async_wait(boost::asio::bind_cancellation_slot(
        cancel.slot(), boost::asio::bind_executor(io, [&](zproc::error_code ec) {
          aborted = ec == boost::asio::error::operation_aborted;
        })));
    boost::asio::post(io, [&] { cancel.emit(boost::asio::cancellation_type::terminal); });
    io.run_for(10s);
    CHECK(aborted);
    CHECK(q.is_alive());  // the process runs on
    q.stop();
  }

  TEST_CASE("spawn_map, wait_all and async_wait") {
    zproc::context ctx(zproc::test::context_options());
    const std::vector<int> inputs{1, 2, 3, 4};
    auto procs = ctx.spawn_map(squares, inputs);
    auto values = zproc::wait_all<std::vector<int>>(procs, 30s);
    REQUIRE(values.size() == 4);
    CHECK(values[3] == std::vector<int>{0, 1, 4, 9});

    auto p = ctx.spawn(add, 40, 2);
    auto bad = ctx.spawn(eat_cookies);
    boost::asio::io_context io;
    int got = 0, again = 0;
    std::string error, error_again;
    zproc::error_code code;
    zproc::test::run_with_deadline(io, [&]() -> boost::asio::awaitable<void> {
      got = co_await p.async_wait<int>();  // the default token
      again = co_await p.async_wait<int>(boost::asio::use_awaitable);
      try {
        co_await bad.async_wait();
      } catch (const zproc::remote_error& e) {  // the exception wait() throws, not only a code
        error = e.message();
      }
      try {
        co_await bad.async_wait(boost::asio::use_awaitable);
      } catch (const zproc::remote_error& e) {
        error_again = e.message();
      }
      std::tie(code) = co_await bad.async_wait(boost::asio::as_tuple(boost::asio::deferred));
    }(), 30s);
    CHECK(got == 42);
    CHECK(again == 42);
    CHECK(error == "out of cookies");
    CHECK(error_again == "out of cookies");
    CHECK(code == zproc::process_errc::remote_exception);
  }

  TEST_CASE("external commands under the same supervision") {
    zproc::context ctx(zproc::test::context_options());
    CHECK_NOTHROW(ctx.spawn_command("/bin/sh", {"-c", "exit 0"}).wait(20s));
    auto p = ctx.spawn_command("/bin/sh", {"-c", "exit 3"});
    CHECK_THROWS_AS(p.wait(20s), zproc::process_wait_error);
    CHECK(p.exitcode() == 3);
    auto s = ctx.spawn_command("/bin/sleep", {"60"});
    s.stop();
    CHECK(s.exitcode() == -SIGTERM);
    CHECK_THROWS_AS(ctx.spawn_command("/nonexistent/program", {}), std::exception);
  }

  TEST_CASE("the server keeps a record of every process spawned through it") {
    zproc::test::server_process srv;
    zproc::context ctx({.address = srv.ipc()});
    ctx.create_state({});
    auto ok = ctx.spawn(add, 1, 2);
    auto threw = ctx.spawn(eat_cookies);
    auto crashed = ctx.spawn(segfault);
    auto retried = ctx.spawn(quick_retries({zproc::retry_on<std::exception>()}), flaky, 3, false);
    auto stopped = ctx.spawn(sleeper, 60);
    CHECK(ok.wait<int>(20s) == 3);
    CHECK_THROWS(threw.wait(20s));
    CHECK_THROWS(crashed.wait(20s));
    CHECK(retried.wait<int>(30s) == 3);
    stopped.stop();

    // Records travel on the supervisor's own connection, after the fact: wait until all are final.
    std::vector<zproc::process_record> records;
    const auto until = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      records = zproc::list_processes(ctx.client());
      const bool all_final = records.size() == 5 &&
                             std::none_of(records.begin(), records.end(), [](const auto& r) {
                               return r.state == "running";
                             });
      if (all_final || std::chrono::steady_clock::now() > until) break;
      std::this_thread::sleep_for(20ms);
    }
    REQUIRE(records.size() == 5);
    auto of = [&](const zproc::process& p) -> const zproc::process_record& {
      for (const auto& r : records)
        if (r.pid == p.pid()) return r;
      FAIL("no record of pid " << p.pid());
      throw std::logic_error("unreachable");
    };
    for (const auto& r : records) {
      CHECK(r.ppid == ::getpid());
      CHECK(r.ns == "default");
      CHECK(r.kind == "target");
    }
    CHECK(of(ok).target == "add");
    CHECK(of(ok).state == "exited");
    CHECK(of(ok).exitcode == 0);
    CHECK(of(threw).state == "failed");
    CHECK(of(threw).exitcode == 1);
    CHECK(of(threw).crash_report.find("what: std::runtime_error: out of cookies") != std::string::npos);
    CHECK(of(crashed).state == "crashed");
    CHECK(of(crashed).exitcode == -SIGSEGV);
    CHECK(of(crashed).crash_report.find("write_through_null") != std::string::npos);
    CHECK(of(retried).state == "exited");
    CHECK(of(retried).attempt == 3);  // one record across the attempts, the pid of the last one
    CHECK(of(stopped).state == "stopped");
    CHECK(of(stopped).exitcode == -SIGTERM);
  }

  TEST_CASE("the parent SIGKILLed: all its descendants are gone within 2 s") {
    zproc::test::child_process tree({ZPROC_TREE_EXE});
    REQUIRE(tree.wait_for_line("ready", 20s));
    std::istringstream in(tree.last_line());
    std::string word;
    pid_t pids[3];
    in >> word >> pids[0] >> pids[1] >> pids[2];
    for (pid_t p : pids) REQUIRE_FALSE(gone(p));
    tree.kill_and_wait();
    CHECK(all_gone_within(pids, 2s));
  }

  TEST_CASE("the parent SIGKILLed before its child has what to run: the child is gone within 2 s") {
    // A bare fork() copy of the parent holds the channel open: the child would wait for its
    // ticket for as long as that copy lives, were it not killed with its parent.
    zproc::test::child_process tree({ZPROC_TREE_EXE, "--die-at-spawn"});
    REQUIRE(tree.wait_for_line("ready", 20s));
    std::istringstream in(tree.last_line());
    std::string word;
    pid_t child = 0, copy = 0;
    in >> word >> child >> copy;
    REQUIRE(child > 0);
    REQUIRE(copy > 0);
    tree.kill_and_wait();  // (it killed itself)
    const pid_t pids[3] = {child, child, child};
    CHECK(all_gone_within(pids, 2s));
    ::kill(child, SIGKILL);  // leave nothing behind for the next test
    ::kill(copy, SIGKILL);
  }

  TEST_CASE("the parent SIGKILLed: what a spawned command's shell started is gone within 2 s") {
    const std::string marker = std::to_string(::getpid()) + "7" + std::to_string(std::rand() % 1000);
    zproc::test::child_process tree({ZPROC_TREE_EXE, "--command", marker});
    REQUIRE(tree.wait_for_line("ready", 20s));
    // sh and its two sleeps
    std::vector<pid_t> before;
    for (auto until = std::chrono::steady_clock::now() + 10s;
         before.size() < 3 && std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(20ms))
      before = processes_with("60." + marker);
    REQUIRE(before.size() == 3);
    tree.kill_and_wait();
    std::vector<pid_t> left;
    for (auto until = std::chrono::steady_clock::now() + 2s;; std::this_thread::sleep_for(20ms)) {
      left = processes_with("60." + marker);
      if (left.empty() || std::chrono::steady_clock::now() > until) break;
    }
    CHECK(left.empty());
    for (pid_t p : left) ::kill(p, SIGKILL);  // leave nothing behind for the next test
  }

  TEST_CASE("a context that ends stops its tree and says so") {
    auto r = zproc::test::run_program({ZPROC_TREE_EXE, "--exit"}, std::chrono::seconds(30));
    CHECK(r.exit_code == 0);
    INFO(r.err);
    CHECK(r.err.find("[zproc] Cleaning up 'level'") != std::string::npos);
    std::istringstream in(r.out);
    std::string word;
    pid_t pids[3];
    in >> word >> pids[0] >> pids[1] >> pids[2];
    CHECK(all_gone_within(pids, 2s));
  }
}
