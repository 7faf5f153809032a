// Where an embedded server's socket lives when the program names none: a private directory
// (0700, unguessable), removed at stop; stale ones of killed programs removed by the next
// server; never another user's path.

#include <zproc/zproc.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

std::string socket_path_of(const zproc::server_thread& s) {
  const std::string a = s.address();
  REQUIRE(a.rfind("ipc://", 0) == 0);
  return a.substr(6);
}

/// A pid that ran and is gone (reaped).
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

/// Runs with XDG_RUNTIME_DIR set to a fresh private directory, restored afterwards.
struct private_runtime {
  std::string path;
  std::string saved;
  bool had = false;
  private_runtime() {
    path = (fs::temp_directory_path() / ("zproc-xdg-" + std::to_string(::getpid()))).string();
    fs::remove_all(path);
    fs::create_directory(path);
    fs::permissions(path, fs::perms::owner_all);
    if (const char* old = std::getenv("XDG_RUNTIME_DIR")) {
      had = true;
      saved = old;
    }
    ::setenv("XDG_RUNTIME_DIR", path.c_str(), 1);
  }
  ~private_runtime() {
    if (had) {
      ::setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
    } else {
      ::unsetenv("XDG_RUNTIME_DIR");
    }
    fs::remove_all(path);
  }
};

}  // namespace

TEST_SUITE("runtime_dir") {
  TEST_CASE("the embedded server's socket is in a private directory, removed at stop") {
    private_runtime xdg;
    std::string dir;
    {
      zproc::server_thread s;
      const fs::path sock = socket_path_of(s);
      dir = sock.parent_path().string();
      CHECK(sock.parent_path().parent_path() == fs::path(xdg.path));  // under $XDG_RUNTIME_DIR
      CHECK(sock.parent_path().filename().string().rfind("zproc-" + std::to_string(::getpid()) + "-", 0) == 0);
      struct stat st {};
      REQUIRE(::lstat(dir.c_str(), &st) == 0);
      CHECK(S_ISDIR(st.st_mode));
      CHECK(st.st_uid == ::geteuid());
      CHECK((st.st_mode & 0777) == 0700);
      zproc::client c;
      c.connect(s.address());
      CHECK(c.ping() == ::getpid());
      zproc::server_thread other;  // two embedded servers: two directories
      CHECK(fs::path(socket_path_of(other)).parent_path() != sock.parent_path());
    }
    CHECK_FALSE(fs::exists(dir));
  }

  TEST_CASE("directories left by killed programs are removed; live ones and others' are kept") {
    private_runtime xdg;
    const fs::path base = xdg.path;
    const fs::path stale = base / ("zproc-" + std::to_string(dead_pid()) + "-abcdef");
    const fs::path live = base / ("zproc-" + std::to_string(::getppid()) + "-abcdef");
    const fs::path unrelated = base / "zproc-notapid-abcdef";
    const fs::path stale_with_data = base / ("zproc-" + std::to_string(dead_pid()) + "-ghijkl");
    for (const auto& d : {stale, live, unrelated, stale_with_data}) {
      fs::create_directory(d);
      fs::permissions(d, fs::perms::owner_all);
    }
    { std::ofstream(stale / "server.sock") << ""; }       // the socket a killed server left
    { std::ofstream(stale_with_data / "notes.txt") << "keep me"; }  // not ours to delete
    zproc::server_thread s;  // cleans up before it makes its own directory
    CHECK_FALSE(fs::exists(stale));
    CHECK(fs::exists(live));
    CHECK(fs::exists(unrelated));
    CHECK(fs::exists(stale_with_data / "notes.txt"));
  }

  TEST_CASE("a named socket path that belongs to another user is refused, not removed") {
    if (::geteuid() != 0) {
      MESSAGE("not root: cannot make a socket of another user's; skipped");
      return;
    }
    const std::string path =
        (fs::temp_directory_path() / ("zproc-squat-" + std::to_string(::getpid()) + ".sock")).string();
    ::unlink(path.c_str());
    {
      boost::asio::io_context io;
      boost::asio::local::stream_protocol::acceptor squatter(
          io, boost::asio::local::stream_protocol::endpoint(path));
      squatter.close();  // a socket file nobody listens on, as a crashed server would leave...
    }
    REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);  // ...but another user's
    try {
      zproc::server_thread s({.listen = {"ipc://" + path}});
      FAIL("listened on another user's socket path");
    } catch (const zproc::error& e) {
      CHECK(std::string(e.what()).find("another user") != std::string::npos);
    }
    CHECK(fs::exists(path));
    ::unlink(path.c_str());
  }
}
