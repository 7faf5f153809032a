// ZProc's state watchers: processes that sleep until the state is what they wait for —
// a value, a key appearing, any change — blocking in one, co_await in another. None of them
// polls, and none misses a write that happens while it is busy.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <optional>

namespace {

using namespace std::chrono_literals;

/// Blocking: waits for a value, then for a key to appear, then reads every change of "temp".
void thermometer_reader(zproc::state& st) {
  st.get_when_equal("oven", "on", {.timeout = 30s});
  std::printf("reader: the oven is on\n");
  const auto recipe = st.get_when_available("recipe", {.timeout = 30s});
  std::printf("reader: recipe '%s'\n", recipe["recipe"].get<std::string>().c_str());
  st.get_when_available("recipe_revision", {.timeout = 30s});
  // Every change of "temp" after the recipe's revision, even those made before this line runs.
  const auto after = st.get("recipe_revision").get<std::uint64_t>();
  for (const auto& snapshot :
       st.when_change({"temp"}, {.timeout = 30s, .start = after, .count = 3}))
    std::printf("reader: temp %d\n", snapshot["temp"].get<int>());
  std::fflush(stdout);
}
ZPROC_TARGET(thermometer_reader);

/// co_await: the same kind of wait in a coroutine (it runs on an io_context of its own).
boost::asio::awaitable<int> fire_alarm(zproc::context& ctx) {
  zproc::client c(co_await boost::asio::this_coro::executor);
  co_await c.async_connect(ctx.address(), boost::asio::use_awaitable);
  zproc::state st(c, ctx.ns());
  // From revision 0: every state since the start, so an early write is not missed either.
  std::optional<zproc::json> hot = co_await st.async_get_when([&] {
    return st.when([](const zproc::json& s) { return s.value("temp", 0) >= 200; },
                   {.timeout = 30s, .start = 0});
  });
  std::printf("alarm: %d degrees!\n", (*hot)["temp"].get<int>());
  std::fflush(stdout);
  co_return (*hot)["temp"].get<int>();
}
ZPROC_TARGET(fire_alarm);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx;
  auto st = ctx.create_state({{"oven", "off"}, {"temp", 20}});
  auto reader = ctx.spawn(thermometer_reader);
  auto fire = ctx.spawn(fire_alarm);
  st.set("oven", "on");
  const auto rev = st.set("recipe", "cookies");
  st.set("recipe_revision", rev);
  for (int t : {100, 180, 220}) st.set("temp", t);  // three writes in a row: none is missed
  reader.wait(60s);
  std::printf("the alarm went off at %d degrees\n", fire.wait<int>(60s));
  return 0;
}
