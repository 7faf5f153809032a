// ZProc's nested processes: a process spawns a process that spawns a process. Each level
// returns the chain of pids below it; when the top of the tree goes, nothing is left behind.
#include <zproc/zproc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

std::string level(zproc::context& ctx, int depth) {
  const std::string me = "level " + std::to_string(depth) + " (pid " + std::to_string(::getpid()) + ")";
  if (depth == 3) return me;
  return me + " -> " + ctx.spawn(level, depth + 1).wait<std::string>();  // a child of its own
}
ZPROC_TARGET(level);

/// Spawns a grandchild that would sleep forever, reports its pid, then sleeps too.
void sleeper_tree(zproc::context& ctx, int depth) {
  if (depth < 2) ctx.spawn(sleeper_tree, depth + 1);
  ctx.create_state().append("pids", static_cast<long long>(::getpid()));
  ::pause();
}
ZPROC_TARGET(sleeper_tree);

/// Whether `pid` runs (a zombie waiting to be reaped does not).
bool running(long long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return false;
  const auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx;
  std::printf("%s\n", ctx.spawn(level, 1).wait<std::string>().c_str());

  // A tree of three sleepers; stopping its root stops all of it.
  auto st = ctx.create_state({{"pids", zproc::json::array()}});
  auto root = ctx.spawn(sleeper_tree, 0);
  auto pids = st.get_when([](const zproc::json& s) { return s.at("pids").size() == 3; },
                          {.timeout = std::chrono::seconds(30)})["pids"];
  std::printf("a tree of %zu sleeping processes\n", pids.size());
  root.stop();
  int alive = 1;
  for (int i = 0; i < 100 && alive > 0; ++i) {
    alive = 0;
    for (const auto& p : pids) alive += running(p.get<long long>());
    if (alive) ::usleep(20'000);
  }
  std::printf("after stopping the root: %d left\n", alive);
  return alive == 0 ? 0 : 1;
}
