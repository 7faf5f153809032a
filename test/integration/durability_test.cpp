// Durability: a server with a data directory comes back after a stop, a SIGKILL, a torn log.
#include "support/server_process.hpp"

#include <zproc/zproc.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace zproc;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
std::string fresh_dir() {
  static int n = 0;
  auto d = fs::temp_directory_path() /
           ("zproc-data-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  fs::remove_all(d);
  return d.string();
}

server_config with_data_dir(const std::string& dir) {
  server_config cfg;
  cfg.data_dir = dir;
  return cfg;
}

/// Runs a server on `dir`, lets `write` use namespace "t" on it, and stops the server.
template <class F>
void write_then_stop(const std::string& dir, F&& write) {
  server_thread srv(with_data_dir(dir));
  client c;
  c.connect(srv.address());
  state st(c, "t");
  write(st);
}
}  // namespace

TEST_SUITE("durability") {
  TEST_CASE("state, revisions and history survive a restart; snapshots keep the log short") {
    const auto dir = fresh_dir();
    server_config cfg;
    cfg.data_dir = dir;
    cfg.snapshot_every = 10;
    cfg.fsync = server_config::fsync_policy::never;
    {
      server_thread srv(cfg);
      client c;
      c.connect(srv.address());
      state st(c, "kitchen");
      for (int i = 1; i <= 35; ++i) st.set("cookies", i);
      st.update({{"oven", true}, {"baker", "me"}});
      st.erase("baker");
      state(c, "other").set("x", 1);
    }
    CHECK(fs::exists(dir + "/snapshot"));
    CHECK(fs::file_size(dir + "/log") < 2000);  // restarted at the last snapshot
    server_thread again(cfg);
    client c;
    c.connect(again.address());
    state st(c, "kitchen");
    CHECK(st.copy() == json({{"cookies", 35}, {"oven", true}}));
    CHECK(st.revision() == 37);
    CHECK(state(c, "other").get("x") == 1);
    auto h = st.history(30);
    REQUIRE(h.size() == 8);
    CHECK(h.back().revision == 37);
    CHECK(h.back().changes[0].key == "baker");
    CHECK(st.at(20)["cookies"] == 20);
    CHECK(st.set("cookies", 0) == 38);  // the counter continues
  }

  TEST_CASE("SIGKILL during a write storm (fsync always): every acknowledged write is there") {
    const auto dir = fresh_dir();
    std::uint64_t last_rev = 0;
    std::vector<int> acked;
    {
      test::server_process srv({"--data-dir", dir, "--fsync", "always"});
      std::thread killer([&] {
        std::this_thread::sleep_for(700ms);
        srv.kill_now();
      });
      auto w = test::run_program({ZPROC_WRITER_EXE, srv.ipc(), "storm", "1000000", "--acked"}, 60s);
      killer.join();
      CHECK(w.exit_code == 1);  // it lost the server mid-storm
      std::istringstream in(w.out);
      std::uint64_t rev = 0;
      int i = 0;
      while (in >> rev >> i) {
        acked.push_back(i);
        last_rev = rev;
      }
    }
    REQUIRE(acked.size() > 10);  // the storm was under way
    test::server_process srv({"--data-dir", dir});
    client c;
    c.connect(srv.ipc());
    state st(c, "storm");
    const auto recovered = st.revision();
    CHECK(recovered >= last_rev);  // possibly one more: written, killed before the ack
    CHECK(recovered <= last_rev + 1);
    const json all = st.copy();
    std::size_t missing = 0;
    for (int i : acked) missing += all.contains("k" + std::to_string(i)) ? 0 : 1;
    CHECK(missing == 0);
    CHECK(st.set("after", true) == recovered + 1);
  }

  TEST_CASE("a torn last record is dropped, never applied half") {
    const auto dir = fresh_dir();
    write_then_stop(dir, [](state& st) {
      st.set("a", 1);
      st.set("b", std::string(1000, 'x'));
    });
    // Cut the last record in the middle, as a crash in the middle of write() would.
    const auto size = fs::file_size(dir + "/log");
    fs::resize_file(dir + "/log", size - 500);
    server_thread srv(with_data_dir(dir));
    client c;
    c.connect(srv.address());
    state st(c, "t");
    CHECK(st.copy() == json({{"a", 1}}));
    CHECK(st.revision() == 1);
    CHECK(st.set("c", 3) == 2);
  }

  TEST_CASE("a corrupted record (bad checksum) ends the log there") {
    const auto dir = fresh_dir();
    write_then_stop(dir, [](state& st) {
      st.set("a", 1);
      st.set("b", 2);
    });
    {
      std::fstream f(dir + "/log", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-2, std::ios::end);
      f.put('\x7f');
    }
    server_thread srv(with_data_dir(dir));
    client c;
    c.connect(srv.address());
    CHECK(state(c, "t").copy() == json({{"a", 1}}));
  }
}
