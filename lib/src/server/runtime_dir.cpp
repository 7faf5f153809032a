#include "server/runtime_dir.hpp"

#include <zproc/error.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace zproc::server_detail {

namespace fs = std::filesystem;

namespace {

constexpr const char* socket_name = "server.sock";

/// A directory of this user's that only this user may write to.
bool private_dir_of_mine(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/// The pid in "zproc-PID-XXXXXX", or 0.
pid_t pid_of(const std::string& name) {
  if (name.rfind("zproc-", 0) != 0) return 0;
  const auto dash = name.find('-', 6);
  if (dash == std::string::npos || dash == 6 || name.size() != dash + 7) return 0;
  pid_t pid = 0;
  for (std::size_t i = 6; i < dash; ++i) {
    if (name[i] < '0' || name[i] > '9' || pid > 1'000'000'000) return 0;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

}  // namespace

std::string runtime_dir::base() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg && private_dir_of_mine(xdg))
    return xdg;
  std::error_code ec;
  auto tmp = fs::temp_directory_path(ec);
  return ec ? std::string("/tmp") : tmp.string();
}

std::size_t runtime_dir::remove_stale(const std::string& base) {
  std::size_t removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const pid_t pid = pid_of(name);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (!private_dir_of_mine(it->path().string())) continue;  // not ours: never touched
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;     // its process still runs
    std::error_code ignored;
    fs::remove(it->path() / socket_name, ignored);
    if (fs::remove(it->path(), ignored)) ++removed;  // only if empty: nothing else is lost
  }
  return removed;
}

runtime_dir::runtime_dir() {
  const std::string parent = base();
  remove_stale(parent);
  std::string templ = (fs::path(parent) / ("zproc-" + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr)  // mode 0700, a name nobody can guess
    throw zproc::error(error_code(errno, boost::system::system_category()),
                       "cannot create a private directory for the embedded server's socket in " +
                           parent + ": " + std::strerror(errno));
  path_ = std::move(templ);
}

runtime_dir::~runtime_dir() {
  std::error_code ignored;
  fs::remove(fs::path(path_) / socket_name, ignored);
  fs::remove(path_, ignored);
}

std::string runtime_dir::socket_address() const {
  return "ipc://" + (fs::path(path_) / socket_name).string();
}

}  // namespace zproc::server_detail
