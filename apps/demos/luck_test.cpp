// ZProc's luck test: processes roll dice until one rolls the lucky number; the first to claim
// the win with compare_and_set is the only winner, however close the race, and the others
// see that someone won and stop.
#include <zproc/zproc.hpp>

#include <unistd.h>

#include <cstdio>
#include <random>
#include <vector>

namespace {

constexpr int players = 6;
constexpr int lucky = 7'777;

int player(zproc::state& st, int id) {
  std::mt19937 rng(std::random_device{}() + static_cast<unsigned>(id));
  std::uniform_int_distribution<int> die(1, 10'000);
  for (int rolls = 1;; ++rolls) {
    if (die(rng) == lucky) {
      // Claim the win only if nobody has: one atomic step on the server.
      if (st.compare_and_set("winner", std::nullopt, zproc::json{{"player", id}, {"rolls", rolls}}))
        return rolls;
      return -rolls;
    }
    if (rolls % 1000 == 0 && st.contains("winner")) return -rolls;  // someone won: stop
  }
}
ZPROC_TARGET(player);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx;
  auto st = ctx.create_state(zproc::json::object());
  std::vector<zproc::process> ps;
  for (int id = 0; id < players; ++id) ps.push_back(ctx.spawn(player, id));
  int winners = 0;
  for (int id = 0; id < players; ++id) {
    const int r = ps[static_cast<std::size_t>(id)].wait<int>();
    std::printf("player %d %s after %d rolls\n", id, r > 0 ? "WON" : "did not win", r > 0 ? r : -r);
    winners += r > 0;
  }
  const auto w = st.get("winner");
  std::printf("winner: player %d (%d rolls); winners: %d\n", w["player"].get<int>(),
              w["rolls"].get<int>(), winners);
  return winners == 1 ? 0 : 1;
}
