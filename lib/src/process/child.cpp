#include "process/child.hpp"

#include "process/crash.hpp"
#include "process/registry.hpp"
#include "process/supervisor.hpp"
#include "process/throw_capture.hpp"

#include <zproc/log.hpp>
#include <zproc/context.hpp>


#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace zproc::process_detail {
namespace {

const ticket* current = nullptr;

[[noreturn]] void die(const std::string& why) {
  detail::log(log_level::error, "child",
              "spawned process " + std::to_string(::getpid()) + ": " + why);
  ::_exit(125);
}

ticket read_ticket() {
  std::string bytes;
  char buf[16 * 1024];
  for (;;) {
    if (auto t = decode_ticket(bytes)) return std::move(*t);
    const ssize_t n = ::read(channel_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("the parent closed the channel before sending what to run");
    bytes.append(buf, static_cast<std::size_t>(n));
  }
}

void send(const std::string& message) {
  for (std::size_t done = 0; done < message.size();) {
    const ssize_t n = ::write(channel_fd, message.data() + done, message.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the parent is gone: nobody to tell
    done += static_cast<std::size_t>(n);
  }
}

exception_report describe_with_retry(const std::vector<std::string>& retry_types) {
  exception_report r = capture_current_exception();  // resolved by the parent
  r.retry = exception_matches(std::current_exception(), retry_types);
  return r;
}

void on_termination_signal(int sig) {
  supervisor::cleanup_all_signal_safe();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

// SIGINT/SIGTERM stop the processes this one spawned first, unless the program handles them.
void install_termination_handlers(bool only_if_default) {
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction old{};
    ::sigaction(sig, nullptr, &old);
    if (only_if_default && old.sa_handler != SIG_DFL) continue;
    struct sigaction sa{};
    sa.sa_handler = &on_termination_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

const ticket* spawned_ticket() noexcept { return current; }

void run_spawned(int argc, char** argv) {
  // Killed when the thread that spawned us ends, from here on (a ticket that says otherwise
  // clears it below); if its process ended already, we were handed to another parent: nobody
  // waits for us (argv[3]: the parent's pid; the ticket's, from a parent without it).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc > 3 && std::to_string(::getppid()) != argv[3]) ::_exit(125);
  static const ticket t = read_ticket();
  ::fcntl(channel_fd, F_SETFD, FD_CLOEXEC);  // not inherited by what this process spawns
  if (!t.die_with_parent) ::prctl(PR_SET_PDEATHSIG, 0);
  if (::getppid() != t.ppid) ::_exit(125);
  current = &t;
  arm_throw_capture();
  install_crash_handlers(channel_fd);
  install_termination_handlers(false);

  const detail::target_info* target = target_named(t.target);
  if (!target) die("this binary has no target named '" + t.target + "' (ZPROC_TARGET)");

  std::string message;
  int code = 0;
  {
    context_options options;
    options.address = t.address;
    options.token = t.token;
    options.tls = t.tls;
    options.ns = t.ns;
    context ctx(std::move(options));
    try {
      message = encode_value(target->invoke(ctx, t.args));
    } catch (...) {
      message = encode_exception(describe_with_retry(t.retry_types));
      code = 1;
    }
  }  // the context stops what the target spawned and left running
  send(message);
  std::fflush(nullptr);
  ::_exit(code);  // as Python's multiprocessing: no static destructors of a half-copied program
}

}  // namespace zproc::process_detail
