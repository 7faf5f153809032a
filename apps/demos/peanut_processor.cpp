// ZProc's peanut processor: a farmer puts peanuts in a shared basket, processors take them out
// one at a time, each in one atomic step, so no peanut is processed twice or dropped; the
// processors sleep on a watcher while the basket is empty instead of polling it.
#include <zproc/zproc.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <vector>

namespace {

constexpr int peanuts = 200;
constexpr int processors = 3;

/// Takes one peanut, or nothing if the basket is empty (one atomic step).
std::optional<int> take(zproc::state& st) {
  return st.atomic([](zproc::json& s) -> std::optional<int> {
    auto& basket = s["basket"];
    if (!basket.is_array() || basket.empty()) return std::nullopt;
    const int p = basket.back().get<int>();
    basket.erase(basket.end() - 1);
    return p;
  });
}

int processor(zproc::state& st) {
  int done = 0;
  auto more = st.when_change({"basket", "harvest_done"}, {.timeout = std::chrono::seconds(30)});
  for (;;) {
    while (auto p = take(st)) {
      st.increment("shelled");
      ++done;
    }
    if (st.get("harvest_done", false).get<bool>()) {
      if (!take(st)) return done;  // nothing came in between
      ++done;
      st.increment("shelled");
      continue;
    }
    more.next();  // sleep until the farmer adds some (or says it is done)
  }
}
ZPROC_TARGET(processor);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx;
  auto st = ctx.create_state({{"basket", zproc::json::array()}, {"shelled", 0}});
  auto workers = ctx.spawn_many(processors, {}, processor);
  for (int p = 0; p < peanuts; ++p) {
    st.append("basket", p);  // the farmer
    if (p % 50 == 49) std::printf("farmer: %d peanuts in\n", p + 1);
  }
  st.set("harvest_done", true);
  int total = 0;
  for (auto& w : workers) {
    const int n = w.wait<int>(std::chrono::seconds(60));
    std::printf("processor %lld shelled %d\n", static_cast<long long>(w.pid()), n);
    total += n;
  }
  std::printf("shelled %d of %d peanuts (counter says %d)\n", total, peanuts,
              st.get("shelled").get<int>());
  return total == peanuts && st.get("shelled").get<int>() == peanuts ? 0 : 1;
}
