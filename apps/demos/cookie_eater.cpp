// The seed README's example: a baker in the parent, an eater in a child process, five cookies.
// The eater watches the jar (no polling, no cookie missed); each side changes it atomically.
#include <zproc/zproc.hpp>

#include <chrono>
#include <cstdio>

namespace {

// Atomic bodies may run again on a conflict: they only change the snapshot.
void eat_cookie(zproc::json& snap) { snap["cookies"] = snap["cookies"].get<int>() - 1; }
void bake_cookie(zproc::json& snap) { snap["cookies"] = snap["cookies"].get<int>() + 1; }

void cookie_eater(zproc::context& ctx) {
  auto state = ctx.create_state();
  auto it = state.when_change({"cookies"}, {.timeout = std::chrono::seconds(30), .count = 5});
  state.set("ready", true);
  for (const auto& snapshot : it) {
    (void)snapshot;
    state.atomic(eat_cookie);
    std::puts("nom nom nom");
    std::fflush(stdout);
  }
}
ZPROC_TARGET(cookie_eater);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);  // in the child, this runs cookie_eater and exits

  zproc::context ctx({.wait = true});  // an embedded server; wait for the children at the end
  auto state = ctx.create_state({{"cookies", 0}});

  // create a ready handle
  auto ready = state.when_available("ready", {.timeout = std::chrono::seconds(30)});

  // spawn the process
  auto proc = ctx.spawn(cookie_eater);
  std::printf("%s\n", zproc::to_string(proc).c_str());
  std::fflush(stdout);  // before the eater can print (stdout to a pipe is buffered)

  // wait for ready
  ready.next();

  // bake some!
  for (int i = 0; i < 5; ++i) {
    state.atomic(bake_cookie);
    std::puts("Here's a cookie!");
    std::fflush(stdout);
  }
}
