// bench_msgpack: decoding a typical request (a set with a small object value) and a swarm
// outcome (64 KiB of packed values) with zproc's MessagePack decoder, against nlohmann's
// from_msgpack (the floor: what zproc used before) in the same run. See docs/performance.md.
#include "protocol/msgpack.hpp"

#include <chrono>
#include <cstdio>
#include <string_view>
#include <vector>

namespace {

template <class F>
double ns_per_call(int n, F&& f) {
  const auto t = std::chrono::steady_clock::now();
  std::size_t sink = 0;
  for (int i = 0; i < n; ++i) sink += f();
  const auto dt = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t);
  if (sink == 42) std::puts("");  // keep the work
  return dt.count() / n;
}

void row(const char* name, const nlohmann::json& message, int n) {
  const auto bytes = nlohmann::json::to_msgpack(message);
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  double ours = 1e18, theirs = 1e18;
  for (int round = 0; round < 3; ++round) {
    theirs = std::min(theirs, ns_per_call(n, [&] {
      return nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false).size();
    }));
    ours = std::min(ours, ns_per_call(n, [&] { return zproc::protocol::decode_msgpack(view).size(); }));
  }
  std::printf("| %s | %zu | %.0f | %.0f | %.2fx |\n", name, bytes.size(), theirs, ours, theirs / ours);
}

}  // namespace

int main() {
  std::printf("| message | bytes | nlohmann from_msgpack (ns) | zproc decode_msgpack (ns) | speed-up |\n");
  std::printf("|---|---|---|---|---|\n");
  row("request: set with an object value",
      {{"i", 12345}, {"o", "set"}, {"n", "kitchen"}, {"k", "cookies"},
       {"v", {{"a", 1}, {"b", "text"}}}, {"h", 3}},
      200'000);
  nlohmann::json outcome = {{"i", 7}, {"r", {{"v", nlohmann::json::binary(std::vector<std::uint8_t>(65536, 1))},
                                              {"n", 8192}, {"tg", "square"}, {"w", 1234}, {"h", "box"}}}};
  row("swarm outcome with 64 KiB of values", outcome, 2'000);
  return 0;
}
