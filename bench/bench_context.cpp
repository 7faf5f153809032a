// The cost of a program's zproc::context when nothing runs: construction (an embedded server on
// its own thread and Unix socket) and destruction (the server stops, the thread joins), beside
// a floor measured in the same run: a thread running an io_context with one Unix-socket
// acceptor, started and joined. Prints p50s and the ratio. Usage: bench_context [ROUNDS]
#include "support.hpp"

#include <zproc/zproc.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double since_us(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

/// The floor: what an embedded server needs at the least, set up and torn down.
double floor_once(const std::string& path) {
  const auto t0 = clock_type::now();
  {
    boost::asio::io_context io;
    boost::asio::local::stream_protocol::acceptor acceptor(
        io, boost::asio::local::stream_protocol::endpoint(path));
    acceptor.async_accept([](boost::system::error_code, auto) {});
    std::thread runner([&] { io.run(); });
    boost::asio::post(io, [&] { acceptor.close(); });
    runner.join();
  }
  ::unlink(path.c_str());
  return since_us(t0);
}

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 100;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("zproc-bench-floor-" + std::to_string(::getpid()) + ".sock"))
                               .string();
  std::vector<double> floor_us, ctor_us, dtor_us, total_us;
  for (int i = 0; i < rounds; ++i) {  // interleaved: both see the same machine
    floor_us.push_back(floor_once(path));
    const auto t0 = clock_type::now();
    auto ctx = std::make_unique<zproc::context>();
    ctor_us.push_back(since_us(t0));
    const auto t1 = clock_type::now();
    ctx.reset();
    dtor_us.push_back(since_us(t1));
    total_us.push_back(since_us(t0));
  }
  const auto f = zproc::bench::summarize(floor_us);
  const auto c = zproc::bench::summarize(ctor_us);
  const auto d = zproc::bench::summarize(dtor_us);
  const auto t = zproc::bench::summarize(total_us);
  zproc::bench::print_latency("floor: io_context thread + unix acceptor, up and down", f);
  zproc::bench::print_latency("zproc::context constructor", c);
  zproc::bench::print_latency("zproc::context destructor", d);
  std::printf("ratio (p50): context up and down %.2fx the floor; destructor %.2f ms (target < 5 ms)\n",
              t.p50_us / f.p50_us, d.p50_us / 1000.0);
}
