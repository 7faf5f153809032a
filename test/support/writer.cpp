// zproc_test_writer ADDRESS NAMESPACE COUNT [KEY]: COUNT rapid writes of KEY (default "n") to
// 1..COUNT, pipelined 64 at a time, from a process of its own. Prints the last revision.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <string>

// zproc_test_writer ADDRESS NAMESPACE COUNT --acked: sequential blocking writes of keys k1..kN,
// printing "REVISION I" after each acknowledgement (flushed), until COUNT or an error.
int acked_storm(const std::string& address, const std::string& ns, int count) {
  zproc::client c({.request_timeout = std::chrono::seconds(5)});
  c.connect(address);
  zproc::state st(c, ns);
  for (int i = 1; i <= count; ++i) {
    std::uint64_t rev = 0;
    try {
      rev = st.set("k" + std::to_string(i), i);
    } catch (const std::exception&) {
      return 1;
    }
    std::printf("%llu %d\n", static_cast<unsigned long long>(rev), i);
    std::fflush(stdout);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  if (argc > 4 && std::string(argv[4]) == "--acked") return acked_storm(argv[1], argv[2], std::stoi(argv[3]));
  const std::string address = argv[1];
  const std::string ns = argv[2];
  const int count = std::stoi(argv[3]);
  const std::string key = argc > 4 ? argv[4] : "n";
  boost::asio::io_context ioc;
  std::uint64_t last = 0;
  int failures = 0;
  boost::asio::co_spawn(
      ioc,
      [&]() -> boost::asio::awaitable<void> {
        zproc::client c(ioc.get_executor());
        co_await c.async_connect(address);
        zproc::state st(c, ns);
        int in_flight = 0;
        int done = 0;
        for (int i = 1; i <= count; ++i) {
          ++in_flight;
          st.async_set(key, i, [&](zproc::error_code ec, std::uint64_t rev) {
            --in_flight;
            ++done;
            if (ec) ++failures;
            last = std::max(last, rev);
          });
          while (in_flight >= 64) co_await boost::asio::post(ioc, boost::asio::deferred);
        }
        while (done < count) co_await boost::asio::post(ioc, boost::asio::deferred);
      },
      boost::asio::detached);
  ioc.run();
  std::printf("%llu\n", static_cast<unsigned long long>(last));
  return failures == 0 ? 0 : 1;
}
