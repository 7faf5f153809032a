// zproc_test_writer ADDRESS NAMESPACE COUNT [KEY]: COUNT rapid writes of KEY (default "n") to
// 1..COUNT, pipelined 64 at a time, from a process of its own. Prints the last revision.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <unistd.h>

// zproc_test_writer ADDRESS NAMESPACE COUNT --acked: sequential blocking writes of keys k1..kN,
// printing "REVISION I" after each acknowledgement (flushed), until COUNT or an error.
int acked_storm(const std::string& address, const std::string& ns, int count) {
  // Ends at the first failure: the server killed mid-storm is not waited for.
  zproc::client c({.request_timeout = std::chrono::seconds(5),
                   .reconnect_timeout = std::chrono::milliseconds(0)});
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

// zproc_test_writer ADDRESS NAMESPACE COUNT --mode: contention workloads for atomic tests.
//   --atomic-incr  COUNT atomic() increments of "n"
//   --incr         COUNT increment("n")
//   --transfer     COUNT atomic() moves of 1 between "a" and "b" (random direction)
//   --hold-lock    takes the namespace lock in atomic() and sleeps (to be SIGKILLed);
//                  prints "locked" when inside the body
int contention(const std::string& address, const std::string& ns, int count,
               const std::string& mode) {
  zproc::client c({.request_timeout = std::chrono::seconds(60)});
  c.connect(address);
  zproc::state st(c, ns);
  if (mode == "--atomic-incr") {
    for (int i = 0; i < count; ++i)
      st.atomic([](zproc::json& s) { s["n"] = s.value("n", 0) + 1; }, {"n"});
  } else if (mode == "--incr") {
    for (int i = 0; i < count; ++i) st.increment("n");
  } else if (mode == "--transfer") {
    unsigned seed = static_cast<unsigned>(::getpid());
    for (int i = 0; i < count; ++i) {
      seed = seed * 1103515245u + 12345u;
      const bool a_to_b = (seed >> 16) & 1;
      st.atomic([&](zproc::json& s) {
        s[a_to_b ? "a" : "b"] = s.value(a_to_b ? "a" : "b", 0) - 1;
        s[a_to_b ? "b" : "a"] = s.value(a_to_b ? "b" : "a", 0) + 1;
      });
    }
  } else if (mode == "--hold-lock") {
    st.atomic(
        [](zproc::json& s) {
          std::printf("locked\n");
          std::fflush(stdout);
          s["held"] = true;
          std::this_thread::sleep_for(std::chrono::hours(1));
        },
        {}, {.optimistic_attempts = 0});
  } else {
    return 2;
  }
  return 0;
}

// zproc_test_writer ADDRESS NAMESPACE COUNT --reconnect FILE: sequential blocking writes of
// keys k1..kN (value i), paced (about 0.2 ms apart), through server restarts: a failed write is
// recorded and the next one is tried. FILE gets "A I REVISION" per acknowledged write and
// "F I ERROR" per failed one; stdout "P I" every 500 writes and "DONE ACKED FAILED" at the end.
int reconnect_storm(const std::string& address, const std::string& ns, int count,
                    const std::string& file) {
  zproc::client c({.request_timeout = std::chrono::seconds(20)});
  c.connect(address);
  zproc::state st(c, ns);
  std::FILE* out = std::fopen(file.c_str(), "w");
  if (out == nullptr) return 3;
  int acked = 0;
  int failed = 0;
  for (int i = 1; i <= count; ++i) {
    try {
      const std::uint64_t rev = st.set("k" + std::to_string(i), i);
      std::fprintf(out, "A %d %llu\n", i, static_cast<unsigned long long>(rev));
      ++acked;
    } catch (const zproc::error& e) {
      std::fprintf(out, "F %d %s\n", i, e.code().message().c_str());
      ++failed;
    }
    if (i % 500 == 0) {
      std::printf("P %d\n", i);
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::fclose(out);
  std::printf("DONE %d %d\n", acked, failed);
  std::fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  if (argc > 5 && std::string(argv[4]) == "--reconnect")
    return reconnect_storm(argv[1], argv[2], std::stoi(argv[3]), argv[5]);
  if (argc > 4 && std::string(argv[4]) != "--acked")
    return contention(argv[1], argv[2], std::stoi(argv[3]), argv[4]);
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
