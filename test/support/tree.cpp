// A program that spawns a tree of processes three levels deep, for the no-orphans tests:
// it prints "ready PID1 PID2 PID3" once every level runs, then waits to be killed (or, with
// --exit, ends normally so its context cleans the tree up). With --command MARKER it spawns a
// shell command that starts two background sleeps (MARKER in every argv: `sleep 60.MARKER`),
// prints "ready", and waits to be killed. With --die-at-spawn it spawns a target and, before the
// child has its ticket (in the on_start hook), makes a bare fork() copy of itself that holds
// the channel open and sleeps, prints "ready CHILD COPY", and SIGKILLs itself: the child must
// not wait for a ticket that never comes.
#include <zproc/zproc.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

namespace {

void level(zproc::context& ctx, int depth) {
  auto st = ctx.create_state();
  st.set("pid" + std::to_string(depth), static_cast<std::int64_t>(::getpid()));
  if (depth < 3) ctx.spawn(level, depth + 1);
  std::this_thread::sleep_for(std::chrono::minutes(5));
}
ZPROC_TARGET(level);

void idle() { std::this_thread::sleep_for(std::chrono::minutes(5)); }
ZPROC_TARGET(idle);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  const bool exit_normally = argc > 1 && std::string(argv[1]) == "--exit";
  zproc::context ctx;
  if (argc > 2 && std::string(argv[1]) == "--command") {
    const std::string sleep = "sleep 60." + std::string(argv[2]);
    ctx.spawn_command("/bin/sh", {"-c", sleep + " & " + sleep + " & wait"});
    std::printf("ready\n");
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::minutes(5));
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "--die-at-spawn") {
    zproc::spawn_options o;
    o.on_start = [](std::int64_t child) {
      const pid_t copy = ::fork();
      if (copy == 0) {  // only async-signal-safe calls in a copy of a threaded program
        ::sleep(30);
        ::_exit(0);
      }
      std::printf("ready %lld %lld\n", static_cast<long long>(child), static_cast<long long>(copy));
      std::fflush(stdout);
      ::raise(SIGKILL);
    };
    ctx.spawn(o, idle);
    std::this_thread::sleep_for(std::chrono::minutes(5));
    return 0;
  }
  auto st = ctx.create_state({});
  ctx.spawn(level, 1);
  const zproc::watch_options within{.timeout = std::chrono::seconds(20)};
  st.get_when_available("pid3", within);
  std::printf("ready %lld %lld %lld\n", static_cast<long long>(st.get("pid1").get<std::int64_t>()),
              static_cast<long long>(st.get("pid2").get<std::int64_t>()),
              static_cast<long long>(st.get("pid3").get<std::int64_t>()));
  std::fflush(stdout);
  if (!exit_normally) std::this_thread::sleep_for(std::chrono::minutes(5));
  return 0;
}
