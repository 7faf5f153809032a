#include "support/server_process.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <thread>
#include <filesystem>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace zproc::test {

namespace {

struct spawned {
  pid_t pid;
  int out;
  int err;
};

spawned spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  for (const auto& e : extra_env) env_storage.push_back(e);
  std::vector<char*> env;
  for (auto& e : env_storage) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  return {pid, out[0], err[0]};
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1000;
}

}  // namespace

std::string fresh_ipc_address() {
  static std::atomic<int> n{0};
  auto path = std::filesystem::temp_directory_path() /
              ("zproc-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".sock");
  // A file there is left by a dead process that had this pid (a server killed by a test does
  // not remove its socket, and pids come round again): this name is ours now.
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
  return "ipc://" + path.string();
}

run_result run_program(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                       const std::vector<std::string>& extra_env) {
  auto p = spawn(argv, extra_env);
  run_result r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{p.out, POLLIN, 0}, {p.err, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(p.pid, SIGKILL);
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  r.exit_code = decode_status(status);
  return r;
}

server_process::server_process() : server_process(std::vector<std::string>{}) {}

server_process::server_process(std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {ZPROC_EXE, "server", "--listen", fresh_ipc_address(),
                                   "--listen", "tcp://127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  // Loopback, tests: TCP without a token unless the test gives the server one.
  const bool token = std::any_of(extra_args.begin(), extra_args.end(), [](const std::string& a) {
    return a == "--token-file" || a == "--access-file";
  });
  if (!token) argv.push_back("--insecure");
  auto p = spawn(argv, {});
  pid_ = p.pid;
  out_fd_ = p.out;
  ::close(p.err);
  // Wait (10 s at most) for the two "listening at ADDR" lines.
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (addresses_.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    pollfd fd{out_fd_, POLLIN, 0};
    if (::poll(&fd, 1, 100) <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = text.find('\n')) != std::string::npos) {
      const std::string line = text.substr(0, nl);
      text.erase(0, nl + 1);
      const std::string prefix = "listening at ";
      if (line.rfind(prefix, 0) == 0) addresses_.push_back(line.substr(prefix.size()));
    }
  }
  if (addresses_.size() < 2) {
    kill_now();
    throw std::runtime_error("zproc server did not start");
  }
}

server_process::~server_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {  // 2 s, then SIGKILL
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      ::usleep(10'000);
    }
    if (pid_ > 0) kill_now();
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

child_process::child_process(const std::vector<std::string>& argv) {
  auto p = spawn(argv, {});
  pid_ = p.pid;
  out_fd_ = p.out;
  ::close(p.err);
}

child_process::~child_process() {
  kill_and_wait();
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool child_process::wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::size_t nl;
    while ((nl = buffered_.find('\n')) != std::string::npos) {
      const std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      if (line.rfind(prefix, 0) == 0) {
        last_line_ = line;
        return true;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd fd{out_fd_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
}

void child_process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int child_process::kill_and_wait() {
  if (pid_ <= 0) return -1000;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return decode_status(status);
}

int server_process::terminate() {
  if (pid_ <= 0) return -1000;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return decode_status(status);
    }
    ::usleep(10'000);
  }
  kill_now();
  return -1000;
}

namespace {
/// True when every thread of `pid` is stopped (state T in /proc/PID/task/TID/stat).
bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::FILE* f = std::fopen((entry.path() / "stat").c_str(), "r");
    if (!f) continue;  // (that thread just ended)
    char line[512] = {};
    const std::size_t n = std::fread(line, 1, sizeof line - 1, f);
    std::fclose(f);
    // "TID (comm) S ...": the state follows the last ')'.
    const char* close = std::strrchr(line, ')');
    if (n == 0 || !close || close[1] != ' ' || close[2] != 'T') return false;
  }
  return !ec;
}
}  // namespace

void stop_process(pid_t pid) {
  ::kill(pid, SIGSTOP);
  // kill() returns before a thread running on another core has stopped: wait (5 s at most)
  // until every thread of the process has, so that nothing sent from now on is answered.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!all_threads_stopped(pid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

void server_process::stop_signal() { stop_process(pid_); }
void child_process::stop_signal() { stop_process(pid_); }
void server_process::continue_signal() { ::kill(pid_, SIGCONT); }

void server_process::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace zproc::test
