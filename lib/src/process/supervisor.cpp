#include "process/supervisor.hpp"

#include "process/crash.hpp"

#include "client/client_core.hpp"
#include "protocol/auth.hpp"
#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"

#include <zproc/log.hpp>
#include <zproc/client.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/core/demangle.hpp>
#include <boost/process/v2/process.hpp>

#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <queue>
#include <system_error>
#include <thread>

namespace zproc::process_detail {
namespace asio = boost::asio;
namespace bp2 = boost::process::v2;
namespace wire = protocol::process;
namespace rf = protocol::process::record_field;
using detail::child;

namespace {

// --- the processes alive, readable from a signal handler ----------------------------------
constexpr std::size_t max_slots = 4096;
struct slot {
  std::atomic<pid_t> pid{0};
  bool group = false;  ///< a command: signal its process group
  char line[192]{};
  std::size_t len = 0;
};
// Constant-initialized (zeros in .bss, mapped as they are first written): with `line` left
// uninitialized the table had a dynamic initializer that wrote all 832 KiB at the start of
// every program linking zproc (~200 page faults per process, spawned children included).
constinit slot slots[max_slots];

int take_slot(pid_t pid, const std::string& target, bool group) {
  for (std::size_t i = 0; i < max_slots; ++i) {
    pid_t expected = 0;
    if (!slots[i].pid.compare_exchange_strong(expected, -1)) continue;
    const int n = std::snprintf(slots[i].line, sizeof slots[i].line,
                                "[zproc] Cleaning up '%s' (%d)...\n", target.c_str(), pid);
    slots[i].len = n < 0 ? 0 : std::min<std::size_t>(static_cast<std::size_t>(n), sizeof slots[i].line - 1);
    slots[i].group = group;
    slots[i].pid.store(pid);
    return static_cast<int>(i);
  }
  return -1;  // more than max_slots alive: the parent-death signal still covers them
}
void release_slot(int i) {
  if (i >= 0) slots[i].pid.store(0);
}

// In the forked child, before exec: die with the supervisor's thread (SIGKILL), and do not
// start at all if the parent is already gone (the signal would never come).
struct parent_death {
  pid_t parent;
  bool enabled;
  error_code on_exec_setup(bp2::posix::default_launcher&, const bp2::filesystem::path&,
                           const char* const*&) const {
    if (!enabled) return {};
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)
      return error_code(ESRCH, boost::system::system_category());
    return {};
  }
  // When exec fails, Boost 1.81 reports errno to the parent, then calls exit(): in a copy of a
  // multi-threaded program that runs its atexit handlers and static destructors (ours would
  // signal the parent's children). Leave with _exit instead. (Variadic: 1.81 detects this hook
  // with one argument list and calls it with another.)
  template <class... A>
  void on_exec_error(A&&...) const {
    ::_exit(127);
  }
};

// A spawned command runs in a process group of its own (its pid is the group's id), so that
// stop(), signal() and the cleanup reach what it starts (a shell's `cmd &` jobs), not only the
// command itself.
struct command_group {
  error_code on_exec_setup(bp2::posix::default_launcher&, const bp2::filesystem::path&,
                           const char* const*&) const {
    if (::setpgid(0, 0) != 0) return error_code(errno, boost::system::system_category());
    return {};
  }
};

// The parent-death signal reaches only a direct child, and a group outlives its leader: a
// command's group gets a guardian, a process that kills the group (SIGKILL) when this program
// is gone, however it went. It is a forked copy of this program, forked twice (nobody's
// zombie, nobody's child here) that only waits on a pipe whose write end only this program
// holds (close-on-exec): it reads a byte when the supervisor lets it go (the command was
// reaped), or the end of the pipe when this program died. Only async-signal-safe calls.
[[noreturn]] void guard_group(pid_t group, int release) {
  // This copy holds all the program's descriptors (sockets, other guardians' pipes): none is
  // the guardian's but `release`.
  auto close_from_to = [](unsigned from, unsigned to) {
    if (from > to) return;
    if (::syscall(SYS_close_range, from, to, 0U) != 0)
      for (unsigned fd = from; fd <= to && fd < 65536; ++fd) ::close(static_cast<int>(fd));
  };
  close_from_to(3, static_cast<unsigned>(release) - 1);
  close_from_to(static_cast<unsigned>(release) + 1, ~0U);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2})
    ::signal(sig, SIG_IGN);  // a terminal's Ctrl-C is for the program; the guardian stays
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  char byte;
  ssize_t n;
  while ((n = ::read(release, &byte, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) ::kill(-group, SIGKILL);  // the end of the pipe: this program is gone
  ::_exit(0);
}

// Starts the guardian of `group`; returns the write end of its pipe (-1 if it could not).
int start_guardian(pid_t group) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
  const pid_t first = ::fork();
  if (first == 0) {
    if (::fork() != 0) ::_exit(0);
    guard_group(group, fds[0]);
  }
  ::close(fds[0]);
  if (first < 0) {
    ::close(fds[1]);
    return -1;
  }
  while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {  // it exits at once
  }
  return fds[1];
}

// Boost.Process's launcher, with its error_code (its throwing form misbehaves in 1.81).
template <class... Inits>
bp2::process start_process(asio::io_context& io, const std::string& exe,
                           const std::vector<std::string>& argv, Inits&&... inits) {
  bp2::posix::default_launcher launcher;
  error_code ec;
  bp2::process p = launcher(io.get_executor(), ec, exe, argv, std::forward<Inits>(inits)...);
  if (ec) {
    // The child reported its failure and exits at once: reap it (1.81 leaves a zombie).
    if (launcher.pid > 0) ::waitpid(launcher.pid, nullptr, 0);
    throw std::system_error(ec.value(), std::generic_category(), "zproc: cannot start " + exe);
  }
  return p;
}

// Starts this program again as a spawned target: posix_spawn (glibc's shares the parent's
// address space until the exec, vfork-like, instead of copying its page tables as fork does:
// the parent's size costs nothing), /proc/self/exe (the very binary that runs, even if its file
// was replaced since) with `argv0` in its argv, `channel` as its fd 3 and no other descriptor
// but 0, 1 and 2 (glibc >= 2.34: addclosefrom; since 2.29 a dup2 onto the same number clears
// close-on-exec). The child sets its own parent-death signal (run_spawned).
pid_t spawn_self(const std::string& argv0, const std::vector<std::string>& args, int channel) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(argv0.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  posix_spawn_file_actions_t actions;
  int rc = ::posix_spawn_file_actions_init(&actions);
  if (rc == 0) {
    rc = ::posix_spawn_file_actions_adddup2(&actions, channel, channel_fd);
    if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(&actions, channel_fd + 1);
    // (An exec that fails is reported here, its child reaped by glibc.)
    if (rc == 0) rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
  }
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "zproc: cannot start " + argv0);
  return pid;
}

int to_exitcode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return status;
}

std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

bool retry_signal(const child& c, int exitcode) {
  for (const auto& r : c.options.retry_for)
    if (r.exception_type.empty() && exitcode == -r.signal) return true;
  return false;
}

// --- SIGKILL after the grace period, on a thread of its own ---------------------------------
// That thread only waits for deadlines and sends signals: nothing the supervisor's thread may
// be stuck in (a hook, a full stderr pipe, the first read of the debug info) delays a kill.
class kill_deadlines {
 public:
  static kill_deadlines& get() {
    static auto* instance = new kill_deadlines();  // never destroyed: its thread runs to the end
    return *instance;
  }
  void add(std::chrono::steady_clock::time_point at, std::weak_ptr<proc_ref> p) {
    {
      std::lock_guard lock(m_);
      queue_.push({at, std::move(p)});
    }
    cv_.notify_one();
  }

 private:
  kill_deadlines() { std::thread([this] { run(); }).detach(); }
  struct entry {
    std::chrono::steady_clock::time_point at;
    std::weak_ptr<proc_ref> p;  ///< expired: the attempt was reaped and let go
    bool operator>(const entry& o) const { return at > o.at; }
  };
  void run() {
    std::unique_lock lock(m_);
    for (;;) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const auto at = queue_.top().at;
      if (std::chrono::steady_clock::now() < at) {
        cv_.wait_until(lock, at);
        continue;
      }
      auto p = queue_.top().p;
      queue_.pop();
      lock.unlock();
      if (auto ref = p.lock()) ref->signal(SIGKILL);  // a no-op once it was reaped
      lock.lock();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::priority_queue<entry, std::vector<entry>, std::greater<>> queue_;
};

// SIGTERM now, SIGKILL after `grace` if it still runs.
void stop_with_grace(const std::shared_ptr<proc_ref>& p, std::chrono::milliseconds grace) {
  if (p->signal(SIGTERM)) kill_deadlines::get().add(std::chrono::steady_clock::now() + grace, p);
}

}  // namespace

bool proc_ref::signal(int sig) {
  std::lock_guard lock(m_);
  if (reaped_) return false;
  return ::kill(group_ ? -pid_ : pid_, sig) == 0;
}

void proc_ref::mark_reaped() {
  std::lock_guard lock(m_);
  reaped_ = true;
}

// --- records on the server -----------------------------------------------------------------
// One connection per server address, on the supervisor's thread; records go in order.
struct supervisor::recorder {
  struct entry {
    std::shared_ptr<child> c;
    json fields;
    bool start;
    bool fields_final = false;  ///< the last record of this process
  };
  struct sink {
    sink(asio::any_io_executor ex, client_options options) : conn(ex, std::move(options)), wake(ex) {}
    zproc::client conn;
    asio::steady_timer wake;
    std::deque<entry> queue;
    bool sending = false;  ///< a record is on its way to the server
    /// Record ids of the processes still running, with the number of the connection that got
    /// them: after a reconnect the server may be another (a restart forgets process records,
    /// a failover server never had them), where the same id names another process's record.
    std::map<const child*, std::pair<std::uint64_t, std::uint64_t>> ids;
  };
  explicit recorder(asio::io_context& ctx) : io(ctx) {}
  asio::io_context& io;
  std::map<std::string, std::shared_ptr<sink>> sinks;

  /// Every record pushed so far was answered (or its server is gone).
  bool idle() const {
    for (const auto& [address, s] : sinks)
      if (s->sending || !s->queue.empty()) return false;
    return true;
  }

  void push(const std::string& address, entry e) {
    auto& s = sinks[address];
    if (!s) {
      // With the credentials of the context that spawned it (its ticket's): the same for every
      // process spawned by contexts on this server, unless they were given different ones.
      client_options options;
      options.token = e.c->ticket.token;
      options.tls = e.c->ticket.tls;
      s = std::make_shared<sink>(io.get_executor(), std::move(options));
      s->wake.expires_at(asio::steady_timer::time_point::max());
      asio::co_spawn(io, run(address, s), asio::detached);
    }
    s->queue.push_back(std::move(e));
    s->wake.cancel();
  }

  asio::awaitable<void> run(std::string address, std::shared_ptr<sink> s) {
    try {
      co_await s->conn.async_connect(address, asio::use_awaitable);
      for (;;) {
        while (s->queue.empty()) {
          co_await s->wake.async_wait(asio::as_tuple(asio::use_awaitable));
          s->wake.expires_at(asio::steady_timer::time_point::max());
        }
        entry e = std::move(s->queue.front());
        s->queue.pop_front();
        json req = protocol::make(e.start ? protocol::op::proc_start : protocol::op::proc_update);
        req[wire::record] = std::move(e.fields);
        // An update goes only on the connection whose server gave the record's id: on any
        // other (a restarted or failover server) the id may name another process's record.
        std::uint64_t only_on = 0;
        if (!e.start) {
          auto it = s->ids.find(e.c.get());
          if (it == s->ids.end()) continue;  // its start was refused
          req[wire::id] = it->second.first;
          only_on = it->second.second;
        }
        s->sending = true;
        auto why = std::make_shared<zproc::diagnostics>();
        auto [ec, reply, on] = co_await detail::async_connection_request(
            s->conn.impl(), only_on, detail::request_access::wrap(std::move(req)), why,
            asio::as_tuple(asio::use_awaitable));
        s->sending = false;
        if (ec == client_errc::connection_closed || ec == client_errc::server_unreachable)
          throw zproc::error(ec);
        if (ec == client_errc::connection_lost) {
          s->ids.erase(e.c.get());  // applied or not, on a server this sink no longer reaches
        } else if (ec) {
          detail::log(log_level::warning, "process",
                      "the server refused a process record: " +
                          (why->message().empty() ? ec.message() : why->message()));
        } else if (e.start) {
          s->ids[e.c.get()] = {reply.get<std::uint64_t>(), on};  // the connection it came on
        } else if (e.fields_final) {
          s->ids.erase(e.c.get());
        }
      }
    } catch (const std::exception&) {
      // The server is gone (an embedded one ends with its context) or was never reachable:
      // the records have nowhere to go; the processes are supervised all the same. The sink
      // goes too (a later record for this address tries a new connection).
    }
    if (auto it = sinks.find(address); it != sinks.end() && it->second == s) sinks.erase(it);
  }
};

// --- one attempt: a running process, its channel, its exit -----------------------------------
// Its exit is watched through a pidfd of our own (not Boost.Process's async_wait: in 1.81 a
// completion that comes for a process still running, as a stale event of a closed descriptor
// whose reactor slot was reused does, leads to a blocking waitpid() on this thread). Woken, it
// reaps with WNOHANG and waits again if the process still runs.
struct supervisor::attempt {
  explicit attempt(asio::io_context& io)
      : channel(io), pidfd(io), eof_timer(io), poll_timer(io) {}
  std::shared_ptr<child> c;
  std::shared_ptr<proc_ref> ref;
  asio::local::stream_protocol::socket channel;
  asio::posix::stream_descriptor pidfd;  ///< readable once the process ended
  asio::steady_timer eof_timer;
  asio::steady_timer poll_timer;  ///< reaping by polling when there is no pidfd
  int guardian = -1;  ///< a command's: the pipe that lets its guardian go (start_guardian)
  ~attempt() {
    if (guardian >= 0) ::close(guardian);  // without a byte: the guardian kills the group
  }
  std::string ticket;
  std::string inbox;
  std::array<char, 16 * 1024> buf;
  bool exited = false;
  bool eof = false;
  int status = 0;
  int slot = -1;
  pid_t pid = 0;
};

namespace {
std::thread::id supervisor_thread;
}  // namespace

supervisor::supervisor() : recorder_(std::make_unique<recorder>(io_)) {
  thread_ = std::thread([this] {
    auto work = asio::make_work_guard(io_);
    io_.run();
  });
  supervisor_thread = thread_.get_id();
}

supervisor& supervisor::get() {
  static supervisor* instance = [] {
    // OpenSSL's exit-time cleanup must come after the join below (the thread connects with
    // tokens and TLS): atexit handlers run in reverse order of registration.
    protocol::auth::initialize_openssl();
    auto* sup = new supervisor();  // never destroyed: used until the very end of the program
    static const pid_t owner = ::getpid();
    std::atexit([] {
      if (::getpid() != owner) return;  // a fork() of this program exiting: not our children
      // The records of processes that ended reach the server first (else it marks them lost).
      instance->flush_records(std::chrono::seconds(2));
      // What still runs gets SIGTERM; when the thread ends, the parent-death signal follows
      // (and when the program is gone, each command's guardian kills what is left of its group).
      cleanup_all_signal_safe();
      instance->io_.stop();
      instance->thread_.join();
    });
    return sup;
  }();
  return *instance;
}

void supervisor::flush_records(std::chrono::milliseconds limit) {
  if (std::this_thread::get_id() == supervisor_thread) return;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto idle = std::make_shared<std::promise<bool>>();
    auto answer = idle->get_future();
    asio::post(io_, [this, idle] { idle->set_value(recorder_->idle()); });
    if (answer.wait_until(deadline) != std::future_status::ready || answer.get()) return;
    if (std::chrono::steady_clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void supervisor::cleanup_all_signal_safe() noexcept {
  for (auto& s : slots) {
    const pid_t pid = s.pid.load();
    if (pid <= 0) continue;
    [[maybe_unused]] auto w = ::write(STDERR_FILENO, s.line, s.len);
    ::kill(s.group ? -pid : pid, SIGTERM);
  }
}

void supervisor::launch(const std::shared_ptr<child>& c) {
  if (std::this_thread::get_id() == supervisor_thread) {
    start_attempt(c);
    return;
  }
  std::promise<void> started;
  auto f = started.get_future();
  asio::post(io_, [this, c, &started] {
    try {
      start_attempt(c);
      started.set_value();
    } catch (...) {
      started.set_exception(std::current_exception());
    }
  });
  f.get();
}

void supervisor::start_attempt(const std::shared_ptr<child>& c) {
  auto a = std::make_shared<attempt>(io_);
  a->c = c;
  const pid_t me = ::getpid();
  const parent_death death{me, c->die_with_parent};
  std::size_t number;
  {
    std::lock_guard lock(c->m);
    number = c->attempts + 1;
  }
  a->pid = [&]() -> pid_t {
    if (c->command) {
      bp2::process p = start_process(io_, c->target, c->command_args, death, command_group{});
      const pid_t pid = p.id();
      (void)p.detach();  // watched below; Boost's handle (and its pidfd) goes now
      return pid;
    }
    ticket t = c->ticket;
    t.ppid = me;
    t.die_with_parent = c->die_with_parent;
    t.attempt = number;
    if (number > 1 && c->has_retry_args) t.args = c->retry_args;
    a->ticket = encode_ticket(t);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      throw std::system_error(errno, std::generic_category(), "zproc: socketpair");
    try {  // first: its failure leaves no child behind
      a->channel.assign(asio::local::stream_protocol(), sv[0]);
    } catch (...) {
      ::close(sv[0]);
      ::close(sv[1]);
      throw;
    }
    pid_t pid = -1;
    try {
      // Our pid in its argv: the child checks its parent before it waits for the ticket.
      pid = spawn_self(executable_path(),
                       {std::string(child_flag), c->target, std::to_string(me)}, sv[1]);
    } catch (...) {
      ::close(sv[1]);
      error_code ignored;
      a->channel.close(ignored);
      throw;
    }
    ::close(sv[1]);
    return pid;
  }();
  a->ref = std::make_shared<proc_ref>(a->pid, c->command);
  if (c->command && c->die_with_parent) {
    a->guardian = start_guardian(a->pid);
    if (a->guardian < 0) {  // a command that might leave orphans does not run
      const int why = errno;  // of the guardian's start (waitpid below overwrites errno)
      ::kill(-a->pid, SIGKILL);
      while (::waitpid(a->pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      throw std::system_error(why, std::generic_category(),
                              "zproc: cannot start the guardian of " + c->target);
    }
  }
  if (const int fd = static_cast<int>(::syscall(SYS_pidfd_open, a->pid, 0)); fd >= 0)
    a->pidfd.assign(fd);
  a->slot = take_slot(a->pid, c->target, c->command);
  bool stop_asked;
  {
    std::lock_guard lock(c->m);
    c->pid = a->pid;
    c->attempts = number;
    c->running = true;
    c->exitcode.reset();
    c->current = a->ref;
    stop_asked = c->stopping;
  }
  running_[c.get()] = a;
  // stop() came while this attempt was being started: it found no process to signal.
  if (stop_asked) stop_with_grace(a->ref, c->options.stop_grace);
  if (c->options.on_start) {
    try {
      c->options.on_start(a->pid);
    } catch (...) {  // a hook's failure is not the process's
    }
  }
  if (number == 1) {
    json fields = json::object();
    fields[rf::pid] = a->pid;
    fields[rf::ppid] = me;
    fields[rf::target] = c->target;
    fields[rf::ns] = c->ticket.ns;
    fields[rf::host] = host_name();
    fields[rf::kind] = c->command ? "command" : "target";
    fields[rf::attempt] = number;
    record(c, std::move(fields), true);
  } else {
    json fields = json::object();
    fields[rf::pid] = a->pid;
    fields[rf::attempt] = number;
    fields[rf::state] = "running";
    record(c, std::move(fields), false);
  }

  if (c->command) {
    a->eof = true;  // no channel
  } else {
    // A failed write shows as the child's exit 125 ("closed before sending what to run").
    asio::async_write(a->channel, asio::buffer(a->ticket), [](error_code, std::size_t) {});
    read_channel(a);
  }
  if (a->pidfd.is_open())
    wait_exit(a);
  else
    poll_exit(a);  // no pidfd (a kernel before 5.3)
}

void supervisor::wait_exit(const std::shared_ptr<attempt>& a) {
  a->pidfd.async_wait(asio::posix::stream_descriptor::wait_read, [this, a](error_code ec) {
    if (a->exited || try_reap(a)) return;
    if (ec) return poll_exit(a);
    wait_exit(a);  // woken while it still runs (an event meant for another): wait again
  });
}

bool supervisor::try_reap(const std::shared_ptr<attempt>& a) {
  siginfo_t info{};
  // WNOWAIT: look first; the pid stays ours (not reused) until the waitpid below.
  int r;
  while ((r = ::waitid(P_PID, static_cast<id_t>(a->pid), &info, WEXITED | WNOHANG | WNOWAIT)) !=
             0 &&
         errno == EINTR) {
  }
  const bool lost = r != 0 && errno == ECHILD;  // reaped by someone else: its status is lost
  if (r != 0 && !lost) return false;
  if (!lost && info.si_pid == 0) return false;  // still running
  release_slot(a->slot);
  a->slot = -1;
  a->ref->mark_reaped();  // no signal goes to this pid any more: it is free once reaped
  if (a->guardian >= 0) {  // the group's leader is reaped: its guardian goes
    [[maybe_unused]] auto w = ::write(a->guardian, "r", 1);
    ::close(a->guardian);
    a->guardian = -1;
  }
  int status = 0;
  while (!lost && ::waitpid(a->pid, &status, WNOHANG) < 0 && errno == EINTR) {
  }
  // Closed now, in the handler that reaped it: the reactor never sees the event of the reap.
  error_code ignored;
  a->pidfd.close(ignored);
  exited(a, status);
  return true;
}

void supervisor::read_channel(const std::shared_ptr<attempt>& a) {
  a->channel.async_read_some(asio::buffer(a->buf), [this, a](error_code ec, std::size_t n) {
    a->inbox.append(a->buf.data(), n);
    if (!ec) return read_channel(a);
    a->eof = true;
    a->eof_timer.cancel();
    if (a->exited) finish(a);
  });
}

void supervisor::poll_exit(const std::shared_ptr<attempt>& a) {
  if (a->exited || try_reap(a)) return;
  a->poll_timer.expires_after(std::chrono::milliseconds(20));
  a->poll_timer.async_wait([this, a](error_code) { poll_exit(a); });
}

void supervisor::exited(const std::shared_ptr<attempt>& a, int status) {
  a->exited = true;
  a->status = status;
  {
    std::lock_guard lock(a->c->m);
    if (a->c->current == a->ref) a->c->current.reset();
  }
  if (a->eof) return finish(a);
  // Normally the channel ends with the process; a grandchild holding it must not hold us.
  a->eof_timer.expires_after(std::chrono::seconds(1));
  a->eof_timer.async_wait([a](error_code ec) {
    if (!ec && !a->eof) a->channel.close();
  });
}

void supervisor::finish(const std::shared_ptr<attempt>& a) {
  const auto& c = a->c;
  // The attempt (its descriptors, their reactor slots) outlives the events queued for it.
  asio::post(io_, [keep = a] {});
  running_.erase(c.get());
  const int code = to_exitcode(a->status);
  child_reports reports = decode_reports(a->inbox);
  if (reports.exception && reports.exception->frames.empty())
    reports.exception->frames =
        resolve_remote(reports.exception->raw_frames, reports.exception->objects);
  bool stopping;
  std::size_t number;
  {
    std::lock_guard lock(c->m);
    stopping = c->stopping;
    number = c->attempts;
  }

  crash_info crash{c->target, a->pid, ::getpid(), {}, {}};
  bool crashed = false;
  bool retry = false;
  if (reports.exception) {
    crashed = true;
    crash.what = reports.exception->type + ": " + reports.exception->message;
    crash.frames = reports.exception->frames;
    retry = reports.exception->retry;
  } else if (code < 0 && !stopping) {
    crashed = true;
    crash.what = "killed by " + describe_signal(-code);
    if (reports.signal) crash.frames = resolve_dump(*reports.signal);
    retry = retry_signal(*c, code);
  }
  const bool may_retry = retry && !stopping &&
                         (!c->options.max_retries || number <= *c->options.max_retries);
  std::string report;
  if (crashed) {
    report = format_crash_report(crash);
    std::string printed = report;
    if (may_retry) {
      printed += "  tried " + std::to_string(number) + " time(s); retrying in " +
                 seconds_text(c->options.retry_delay) + "\n";
    } else if (retry) {
      printed += "  tried " + std::to_string(number) + " time(s); giving up\n";
    }
    constexpr std::string_view prefix = "[zproc] ";  // the log adds its own
    std::string_view message = printed;
    if (message.substr(0, prefix.size()) == prefix) message.remove_prefix(prefix.size());
    detail::log(log_level::error, "process", message);
    if (c->options.on_crash) {
      try {
        c->options.on_crash(a->pid, report);
      } catch (...) {  // a hook's failure is not the process's
      }
    }
  }

  if (may_retry) {
    {
      std::lock_guard lock(c->m);
      c->running = false;
      c->exitcode = code;
    }
    json fields = json::object();
    fields[rf::state] = reports.exception ? "failed" : "crashed";
    fields[rf::exitcode] = code;
    fields[rf::crash_report] = report;
    record(c, std::move(fields), false);  // the next attempt sets it running again
    auto t = std::make_shared<asio::steady_timer>(io_, c->options.retry_delay);
    retrying_[c.get()] = t;
    t->async_wait([this, c, code](error_code) {  // stop() cancels it
      retrying_.erase(c.get());
      bool stop_asked;
      {
        std::lock_guard lock(c->m);
        stop_asked = c->stopping;
      }
      if (stop_asked) return settle(c, code, stopped_error(*c, code), {}, "stopped", {});
      try {
        start_attempt(c);
      } catch (const std::exception& e) {
        settle(c, code,
               std::make_exception_ptr(process_wait_error(
                   "process '" + c->target + "' could not be started again: " + e.what(), c->pid,
                   c->target, {}, code)),
               {}, "failed", {});
      }
    });
    return;
  }

  const bool got_value = reports.value.has_value();
  const bool stopped = stopping && !got_value;  // a value sent before the stop still counts
  std::exception_ptr error =
      stopped ? stopped_error(*c, code)
              : make_error(*c, report, reports.exception, code, got_value || c->command);
  const char* state = stopped             ? "stopped"
                      : reports.exception ? "failed"
                      : code < 0          ? "crashed"
                                          : "exited";
  settle(c, code, std::move(error), std::move(reports.value), state, report);
}

void supervisor::settle(const std::shared_ptr<child>& c, int code, std::exception_ptr error,
                        std::optional<std::string> value, const char* state,
                        const std::string& report) {
  {
    std::lock_guard lock(c->m);
    c->running = false;
    c->done = true;
    c->exitcode = code;
    c->error = std::move(error);
    if (value) c->value = std::move(*value);
  }
  json fields = json::object();
  fields[rf::state] = state;
  fields[rf::exitcode] = code;
  if (!report.empty()) fields[rf::crash_report] = report;
  record(c, std::move(fields), false, true);
  complete(c);
}

void supervisor::complete(const std::shared_ptr<child>& c) {
  std::vector<child::waiter> waiters;
  std::exception_ptr error;
  std::string value;
  {
    std::lock_guard lock(c->m);
    waiters.swap(c->waiters);
    error = c->error;
    value = c->value;
  }
  c->cv.notify_all();
  for (auto& w : waiters) {
    std::exception_ptr e = error ? error : type_mismatch(*c, w.type);
    asio::post(io_, asio::append(std::move(w.handler), e, value));
  }
}

void supervisor::add_waiter(const std::shared_ptr<child>& c, child::waiter w) {
  {
    std::lock_guard lock(c->m);
    c->waiters.push_back(std::move(w));
    if (!c->done) return;  // (its cancellation slot was connected by the initiating function)
  }
  complete(c);
}

void supervisor::cancel_waiter(const std::shared_ptr<child>& c, std::uint64_t id) {
  std::optional<child::waiter> w;
  {
    std::lock_guard lock(c->m);
    for (auto it = c->waiters.begin(); it != c->waiters.end(); ++it)
      if (it->id == id) {
        w = std::move(*it);
        c->waiters.erase(it);
        break;
      }
  }
  if (!w) return;  // completed already
  auto e = std::make_exception_ptr(
      boost::system::system_error(asio::error::operation_aborted, "zproc: async_wait"));
  asio::post(io_, asio::append(std::move(w->handler), e, std::string()));
}

void supervisor::stop(const std::shared_ptr<child>& c, bool wait) {
  bool first;
  std::shared_ptr<proc_ref> running;
  {
    std::lock_guard lock(c->m);
    if (c->done) return;
    first = !c->stopping;
    c->stopping = true;
    if (first) running = c->current;  // none: between attempts, or being started
  }
  if (first) {
    // Signals from this thread, the SIGKILL from the deadline thread: neither waits for the
    // supervisor's thread.
    if (running) stop_with_grace(running, c->options.stop_grace);
    asio::post(io_, [this, c] {
      if (auto r = retrying_.find(c.get()); r != retrying_.end())
        r->second->cancel();  // its handler sees `stopping` and settles at once
    });
  }
  if (!wait || std::this_thread::get_id() == supervisor_thread) return;  // not on ourselves
  // Bounded: SIGKILL follows SIGTERM after stop_grace.
  std::unique_lock lock(c->m);
  c->cv.wait(lock, [&] { return c->done; });
}

void supervisor::record(const std::shared_ptr<child>& c, json fields, bool start, bool final) {
  if (c->ticket.address.empty()) return;
  recorder_->push(c->ticket.address, {c, std::move(fields), start, final});
}

std::exception_ptr type_mismatch(const child& c, const char* type) {
  if (c.command || c.value_type == type || std::string_view(type) == typeid(void).name())
    return nullptr;
  return std::make_exception_ptr(std::invalid_argument(
      "zproc: wait<" + boost::core::demangle(type) + ">() on target '" + c.target +
      "', which returns " + boost::core::demangle(c.value_type.c_str())));
}

std::exception_ptr stopped_error(const child& c, int exitcode) {
  return std::make_exception_ptr(process_wait_error(
      "process '" + c.target + "' (pid " + std::to_string(c.pid) + ") was stopped", c.pid,
      c.target, {}, exitcode));
}

std::exception_ptr make_error(const child& c, const std::string& crash_report,
                              const std::optional<exception_report>& exception, int exitcode,
                              bool got_value) {
  const std::string who = "process '" + c.target + "' (pid " + std::to_string(c.pid) + ")";
  if (exception) {
    return std::make_exception_ptr(remote_error(
        exception->type + ": " + exception->message + " (in " + who + ")", c.pid, c.target,
        crash_report, exception->type, exception->message,
        format_stacktrace(exception->frames)));
  }
  if (exitcode < 0)
    return std::make_exception_ptr(process_wait_error(
        who + " was killed by " + describe_signal(-exitcode), c.pid, c.target, crash_report,
        exitcode));
  if (exitcode > 0)
    return std::make_exception_ptr(process_wait_error(
        who + " exited with code " + std::to_string(exitcode), c.pid, c.target, crash_report,
        exitcode));
  if (!got_value)
    return std::make_exception_ptr(process_wait_error(
        who + " exited before its target returned a value", c.pid, c.target, crash_report,
        exitcode));
  return nullptr;
}

}  // namespace zproc::process_detail
