// ZProc's chain reaction: each process waits for its turn in the shared state, then lights
// the next one. No messages wired by hand: the processes only watch and write the state.
#include <zproc/zproc.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr int links = 8;

void chain_link(zproc::state& st, int n) {
  const std::string mine = "link" + std::to_string(n);
  st.get_when_equal(mine, true, {.timeout = std::chrono::seconds(30)});  // my turn
  std::printf("link %d lit\n", n);
  std::fflush(stdout);
  st.set("link" + std::to_string(n + 1), true);  // the next one's
}
ZPROC_TARGET(chain_link);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx({.wait = true});
  auto st = ctx.create_state(zproc::json::object());
  std::vector<zproc::process> chain;
  for (int n = links - 1; n >= 0; --n) chain.push_back(ctx.spawn(chain_link, n));  // last first

  const auto start = std::chrono::steady_clock::now();
  st.set("link0", true);  // the spark
  st.get_when_equal("link" + std::to_string(links), true, {.timeout = std::chrono::seconds(30)});
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::printf("the chain of %d processes went off in %lld us\n", links,
              static_cast<long long>(us));
  zproc::wait_all(chain);
  return 0;
}
