// The library's messages go through the log sink (zproc/log.hpp): with a handler installed, a
// crash report, a cleanup line and a swarm worker's message reach it, and nothing of them
// reaches stderr; levels filter; a handler that throws or logs itself breaks nothing.
#include "support/file_log.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void log_test_throws() { throw std::runtime_error("logged, not printed"); }
ZPROC_TARGET(log_test_throws);

void log_test_sleeps() { std::this_thread::sleep_for(60s); }
ZPROC_TARGET(log_test_sleeps);

int log_test_twice(int x) { return 2 * x; }
ZPROC_TARGET(log_test_twice);

int log_test_stuck(int x) {
  std::this_thread::sleep_for(30s);
  return x;
}
ZPROC_TARGET(log_test_stuck);

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Sends this process's stderr (and its children's) to a file while it lives.
class stderr_to_file {
 public:
  explicit stderr_to_file(const fs::path& p) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~stderr_to_file() {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }

 private:
  int saved_;
};

}  // namespace

TEST_SUITE("log") {
  TEST_CASE("with a handler, crash reports, cleanup lines and workers' messages reach it, not "
            "stderr") {
    const fs::path dir = fs::temp_directory_path() / ("zproc-log-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path log = dir / "log.txt";
    const fs::path err = dir / "stderr.txt";
    // This process logs through the handler; the processes it spawns install the same one
    // (test/main.cpp) from the environment.
    ::setenv("ZPROC_TEST_LOG_FILE", log.c_str(), 1);
    auto previous = zproc::set_log_handler(zproc::test::file_log_handler(log));
    {
      stderr_to_file capture(err);
      zproc::context ctx;
      auto failing = ctx.spawn(log_test_throws);
      CHECK_THROWS_AS(failing.wait(30s), zproc::remote_error);
      // A worker's message: its watchdog aborts a call that outlives call_timeout.
      zproc::swarm_options so;
      so.call_timeout = 300ms;
      so.max_attempts = 1;
      auto sw = ctx.create_swarm(1, so);
      CHECK(sw.map(log_test_twice, std::vector<int>{1, 2, 3}) == std::vector<int>{2, 4, 6});
      CHECK_THROWS(sw.map(log_test_stuck, std::vector<int>{1}));
      sw.stop();
      ctx.spawn(log_test_sleeps);  // still running when the context ends: cleaned up
    }
    zproc::set_log_handler(std::move(previous));
    ::unsetenv("ZPROC_TEST_LOG_FILE");

    const std::string logged = read_all(log);
    const std::string printed = read_all(err);
    INFO("log: " << logged);
    INFO("stderr: " << printed);
    CHECK(logged.find("error process: Crash report:") != std::string::npos);
    CHECK(logged.find("logged, not printed") != std::string::npos);
    CHECK(logged.find("info process: Cleaning up 'log_test_sleeps'") != std::string::npos);
    CHECK(logged.find("error swarm: worker ") != std::string::npos);
    CHECK(logged.find("ran longer than call_timeout") != std::string::npos);
    CHECK(printed.find("Crash report") == std::string::npos);
    CHECK(printed.find("Cleaning up") == std::string::npos);
    CHECK(printed.find("call_timeout") == std::string::npos);
    fs::remove_all(dir);
  }

  TEST_CASE("the server logs connections and refused requests (debug)") {
    std::mutex m;
    std::vector<std::string> lines;
    auto previous = zproc::set_log_handler([&](const zproc::log_record& r) {
      if (r.component != "server") return;
      std::lock_guard lock(m);
      lines.push_back(std::string(zproc::to_string(r.level)) + " " + std::string(r.message));
    });
    const auto level = zproc::get_log_level();
    auto seen = [&](const std::string& text) {
      std::lock_guard lock(m);
      for (const auto& l : lines)
        if (l.find(text) != std::string::npos) return true;
      return false;
    };
    // An embedded server; one client connects, is refused a get, goes.
    auto one_refused_get = [&] {
      boost::asio::io_context io;
      zproc::server_config config;
      config.listen = {"tcp://127.0.0.1:0"};
      config.access.insecure = true;
      zproc::server srv(io.get_executor(), config);
      srv.start();
      std::thread t([&] { io.run(); });
      {
        zproc::client c;
        c.connect(srv.addresses().at(0));
        CHECK_THROWS_AS(zproc::state(c, "ns").get("nope"), zproc::error);
      }
      const auto until = std::chrono::steady_clock::now() + 500ms;
      while (!seen("disconnected") && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(10ms);
      srv.stop();
      t.join();
    };
    zproc::set_log_level(zproc::log_level::debug);
    one_refused_get();
    CHECK(seen("debug server: client 1 connected"));
    CHECK(seen("debug server: client 1 refused get: key 'nope' not found in namespace 'ns'"));
    CHECK(seen("debug server: client 1 disconnected"));
    zproc::set_log_level(zproc::log_level::info);  // the default: none of that
    const std::size_t before = lines.size();
    one_refused_get();
    CHECK(lines.size() == before);
    zproc::set_log_level(level);
    zproc::set_log_handler(std::move(previous));
  }

  TEST_CASE("levels filter; the default handler prints '[zproc] ' lines; a handler that throws "
            "or logs breaks nothing") {
    std::vector<std::string> got;
    auto previous = zproc::set_log_handler([&](const zproc::log_record& r) {
      got.push_back(std::string(zproc::to_string(r.level)) + " " + std::string(r.message));
    });
    const auto level = zproc::get_log_level();
    zproc::set_log_level(zproc::log_level::warning);
    zproc::detail::log(zproc::log_level::info, "test", "dropped");
    zproc::detail::log(zproc::log_level::error, "test", "kept\n");
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "error kept");  // without the final newline
    zproc::set_log_level(zproc::log_level::off);
    zproc::detail::log(zproc::log_level::error, "test", "nothing at all");
    CHECK(got.size() == 1);
    zproc::set_log_level(zproc::log_level::trace);

    zproc::set_log_handler([](const zproc::log_record&) { throw std::runtime_error("oops"); });
    CHECK_NOTHROW(zproc::detail::log(zproc::log_level::error, "test", "thrown away"));
    int depth = 0;
    zproc::set_log_handler([&](const zproc::log_record&) {
      ++depth;
      zproc::detail::log(zproc::log_level::error, "test", "from the handler");  // to stderr
    });
    CHECK_NOTHROW(zproc::detail::log(zproc::log_level::error, "test", "once"));
    CHECK(depth == 1);

    zproc::set_log_handler({});  // the default: stderr
    const fs::path err = fs::temp_directory_path() / ("zproc-log-" + std::to_string(::getpid()) + ".txt");
    {
      stderr_to_file capture(err);
      zproc::detail::log(zproc::log_level::warning, "test", "to stderr");
    }
    CHECK(read_all(err) == "[zproc] to stderr\n");
    fs::remove(err);

    CHECK(zproc::parse_log_level("debug") == zproc::log_level::debug);
    CHECK(zproc::parse_log_level("warn") == zproc::log_level::warning);
    CHECK(!zproc::parse_log_level("loud"));
    zproc::set_log_level(level);
    zproc::set_log_handler(std::move(previous));
  }
}
