// A program that spawns a tree of processes three levels deep, for the no-orphans tests:
// it prints "ready PID1 PID2 PID3" once every level runs, then waits to be killed (or, with
// --exit, ends normally so its context cleans the tree up). With --command MARKER it spawns a
// shell command that starts two background sleeps (MARKER in every argv: `sleep 60.MARKER`),
// prints "ready", and waits to be killed.
#include <zproc/zproc.hpp>

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
