// The demos run to completion and print what they should (they are real programs: each starts
// its own embedded server and real child processes).
#include "support/server_process.hpp"

#include <doctest/doctest.h>

#include <string>

namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("demos") {
  TEST_CASE("cookie_eater: the seed README's output, modulo pids") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/cookie_eater"}, std::chrono::seconds(60));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.rfind("Process - pid: ", 0) == 0);
    CHECK(r.out.find("target: 'cookie_eater' ppid: ") != std::string::npos);
    CHECK(r.out.find("is_alive: true exitcode: none\n") != std::string::npos);
    CHECK(count(r.out, "Here's a cookie!\n") == 5);
    CHECK(count(r.out, "nom nom nom\n") == 5);
    CHECK(r.err.empty());
  }

  TEST_CASE("remote_exceptions: the parent catches the child's exception with its stacktrace") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/remote_exceptions"},
                                      std::chrono::seconds(60));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("a full jar holds 4 cookies") != std::string::npos);
    CHECK(r.out.find("caught zproc::remote_error from 'cookie_counter'") != std::string::npos);
    CHECK(r.out.find("type: std::runtime_error") != std::string::npos);
    CHECK(r.out.find("message: out of cookies") != std::string::npos);
    CHECK(r.out.find("0# (anonymous namespace)::count_cookies(") != std::string::npos);
    CHECK(r.out.find("remote_exceptions.cpp:") != std::string::npos);
    CHECK(r.out.find("the child's exit code: 1") != std::string::npos);
    // The supervisor printed the crash report on stderr.
    CHECK(r.err.find("[zproc] Crash report:\n  target: 'cookie_counter'") != std::string::npos);
    CHECK(r.err.find("  what: std::runtime_error: out of cookies") != std::string::npos);
  }

  TEST_CASE("mapper: a swarm maps squares, checks them, and prints tasks per second") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/mapper", "200000", "2"},
                                      std::chrono::seconds(120));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("mapped 200000 squares on 2 workers: all correct\n") != std::string::npos);
    CHECK(r.out.find(" tasks per second (") != std::string::npos);
    CHECK(r.err.find("[") == std::string::npos);  // no progress bar when stderr is not a terminal
  }

  TEST_CASE("atomicity: get + set loses updates under contention, atomic() loses none") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/atomicity"}, std::chrono::seconds(120));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("get + set:  ") != std::string::npos);
    CHECK(r.out.find("atomic():   2000 of 2000\n") != std::string::npos);
  }

  TEST_CASE("chain_reaction: each process lights the next through the state") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/chain_reaction"}, std::chrono::seconds(60));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    for (int n = 0; n < 8; ++n) CHECK(r.out.find("link " + std::to_string(n) + " lit\n") != std::string::npos);
    // In order: each one waited for the one before.
    CHECK(r.out.find("link 0 lit") < r.out.find("link 7 lit"));
    CHECK(r.out.find("the chain of 8 processes went off in ") != std::string::npos);
  }

  TEST_CASE("luck_test: one winner, however close the race") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/luck_test"}, std::chrono::seconds(120));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(count(r.out, " WON after ") == 1);
    CHECK(r.out.find("winners: 1\n") != std::string::npos);
  }

  TEST_CASE("peanut_processor: every peanut shelled once") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/peanut_processor"},
                                      std::chrono::seconds(120));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(count(r.out, "shelled ") == 4);
    CHECK(r.out.find("shelled 200 of 200 peanuts (counter says 200)\n") != std::string::npos);
  }

  TEST_CASE("nested_procs: a tree of processes, and nothing left when its root stops") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/nested_procs"}, std::chrono::seconds(60));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("level 1 (pid ") == 0);
    CHECK(r.out.find(" -> level 3 (pid ") != std::string::npos);
    CHECK(r.out.find("after stopping the root: 0 left\n") != std::string::npos);
  }

  TEST_CASE("state_watchers: blocking and co_await watchers miss no write") {
    auto r = zproc::test::run_program({ZPROC_DEMO_DIR "/state_watchers"},
                                      std::chrono::seconds(60));
    INFO(r.out, r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("reader: temp 100\nreader: temp 180\nreader: temp 220\n") !=
          std::string::npos);
    CHECK(r.out.find("the alarm went off at 220 degrees\n") != std::string::npos);
  }
}
