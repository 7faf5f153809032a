#include "process/supervisor.hpp"

#include "process/crash.hpp"

#include <zproc/client.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/core/demangle.hpp>
#include <boost/process/v2/process.hpp>

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <future>
#include <map>
#include <system_error>
#include <thread>

namespace zproc::process_detail {
namespace asio = boost::asio;
namespace bp2 = boost::process::v2;
using detail::child;

namespace {

// --- the processes alive, readable from a signal handler ----------------------------------
constexpr std::size_t max_slots = 4096;
struct slot {
  std::atomic<pid_t> pid{0};
  char line[192];
  std::size_t len = 0;
};
slot slots[max_slots];

int take_slot(pid_t pid, const std::string& target) {
  for (std::size_t i = 0; i < max_slots; ++i) {
    pid_t expected = 0;
    if (!slots[i].pid.compare_exchange_strong(expected, -1)) continue;
    const int n = std::snprintf(slots[i].line, sizeof slots[i].line,
                                "[zproc] Cleaning up '%s' (%d)...\n", target.c_str(), pid);
    slots[i].len = n < 0 ? 0 : std::min<std::size_t>(static_cast<std::size_t>(n), sizeof slots[i].line - 1);
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

// Boost.Process's launcher, with its error_code (its throwing form misbehaves in 1.81).
template <class... Inits>
bp2::process start_process(asio::io_context& io, const std::string& exe,
                           const std::vector<std::string>& argv, Inits&&... inits) {
  bp2::posix::default_launcher launcher;
  error_code ec;
  bp2::process p = launcher(io.get_executor(), ec, exe, argv, std::forward<Inits>(inits)...);
  if (ec)
    throw std::system_error(ec.value(), std::generic_category(), "zproc: cannot start " + exe);
  return p;
}

// The channel as fd 3 of the child. (Boost 1.81's posix::bind_fd has an on_setup that returns
// no value: undefined behaviour that crashed here.)
struct channel_init {
  int fd;
  error_code on_setup(bp2::posix::default_launcher& launcher, const bp2::filesystem::path&,
                      const char* const*) const {
    launcher.fd_whitelist.push_back(channel_fd);
    return {};
  }
  error_code on_exec_setup(bp2::posix::default_launcher&, const bp2::filesystem::path&,
                           const char* const*) const {
    if (::dup2(fd, channel_fd) == -1) return error_code(errno, boost::system::system_category());
    return {};
  }
};

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

}  // namespace

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
    explicit sink(asio::any_io_executor ex) : conn(ex), wake(ex) {}
    zproc::client conn;
    asio::steady_timer wake;
    std::deque<entry> queue;
    std::map<const child*, std::uint64_t> ids;  ///< record ids of the processes still running
  };
  explicit recorder(asio::io_context& ctx) : io(ctx) {}
  asio::io_context& io;
  std::map<std::string, std::shared_ptr<sink>> sinks;

  void push(const std::string& address, entry e) {
    auto& s = sinks[address];
    if (!s) {
      s = std::make_shared<sink>(io.get_executor());
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
        json req = json::object();
        req["o"] = e.start ? "proc_start" : "proc_update";
        req["record"] = std::move(e.fields);
        if (!e.start) {
          auto it = s->ids.find(e.c.get());
          if (it == s->ids.end()) continue;  // its start was refused
          req["id"] = it->second;
        }
        auto [ec, reply] = co_await detail::async_request<json>(
            s->conn.impl(), std::move(req), asio::as_tuple(asio::use_awaitable));
        if (ec == client_errc::connection_closed || ec == client_errc::server_unreachable)
          throw zproc::error(ec);
        if (ec) {
          std::fprintf(stderr, "[zproc] the server refused a process record: %s\n",
                       ec.message().c_str());
        } else if (e.start) {
          s->ids[e.c.get()] = reply.get<std::uint64_t>();
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
struct supervisor::attempt {
  explicit attempt(asio::io_context& io)
      : channel(io), eof_timer(io), kill_timer(io), poll_timer(io) {}
  std::shared_ptr<child> c;
  std::optional<bp2::process> proc;
  asio::local::stream_protocol::socket channel;
  asio::steady_timer eof_timer;
  asio::steady_timer kill_timer;
  asio::steady_timer poll_timer;  ///< reaping by waitpid() when the pidfd wait failed
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
    auto* sup = new supervisor();  // never destroyed: used until the very end of the program
    static const pid_t owner = ::getpid();
    std::atexit([] {
      if (::getpid() != owner) return;  // a fork() of this program exiting: not our children
      // What still runs gets SIGTERM; when the thread ends, the parent-death signal follows.
      cleanup_all_signal_safe();
      instance->io_.stop();
      instance->thread_.join();
    });
    return sup;
  }();
  return *instance;
}

void supervisor::cleanup_all_signal_safe() noexcept {
  for (auto& s : slots) {
    const pid_t pid = s.pid.load();
    if (pid <= 0) continue;
    [[maybe_unused]] auto w = ::write(STDERR_FILENO, s.line, s.len);
    ::kill(pid, SIGTERM);
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
  if (c->command) {
    a->proc.emplace(start_process(io_, c->target, c->command_args, death));
  } else {
    ticket t = c->ticket;
    t.ppid = me;
    t.attempt = number;
    if (number > 1 && c->has_retry_args) t.args = c->retry_args;
    a->ticket = encode_ticket(t);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      throw std::system_error(errno, std::generic_category(), "zproc: socketpair");
    try {
      const std::vector<std::string> argv{std::string(child_flag), c->target};
      a->proc.emplace(
          start_process(io_, executable_path(), argv, death, channel_init{sv[1]}));
    } catch (...) {
      ::close(sv[0]);
      ::close(sv[1]);
      throw;
    }
    ::close(sv[1]);
    a->channel.assign(asio::local::stream_protocol(), sv[0]);
  }
  a->pid = a->proc->id();
  a->slot = take_slot(a->pid, c->target);
  {
    std::lock_guard lock(c->m);
    c->pid = a->pid;
    c->attempts = number;
    c->running = true;
    c->exitcode.reset();
  }
  running_[c.get()] = a;
  if (c->options.on_start) {
    try {
      c->options.on_start(a->pid);
    } catch (...) {  // a hook's failure is not the process's
    }
  }
  if (number == 1) {
    json fields = json::object();
    fields["pid"] = a->pid;
    fields["ppid"] = me;
    fields["target"] = c->target;
    fields["n"] = c->ticket.ns;
    fields["host"] = host_name();
    fields["kind"] = c->command ? "command" : "target";
    fields["attempt"] = number;
    record(c, std::move(fields), true);
  } else {
    json fields = json::object();
    fields["pid"] = a->pid;
    fields["attempt"] = number;
    fields["state"] = "running";
    record(c, std::move(fields), false);
  }

  if (c->command) {
    a->eof = true;  // no channel
  } else {
    // A failed write shows as the child's exit 125 ("closed before sending what to run").
    asio::async_write(a->channel, asio::buffer(a->ticket), [](error_code, std::size_t) {});
    read_channel(a);
  }
  a->proc->async_wait([this, a](error_code ec, int) {
    if (ec) return poll_exit(a);
    exited(a, a->proc->native_exit_code());
  });
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
  int status = 0;
  if (::waitpid(a->pid, &status, WNOHANG) == a->pid) return exited(a, status);
  a->poll_timer.expires_after(std::chrono::milliseconds(20));
  a->poll_timer.async_wait([this, a](error_code) { poll_exit(a); });
}

void supervisor::exited(const std::shared_ptr<attempt>& a, int status) {
  a->exited = true;
  a->status = status;
  release_slot(a->slot);
  a->kill_timer.cancel();
  if (a->eof) return finish(a);
  // Normally the channel ends with the process; a grandchild holding it must not hold us.
  a->eof_timer.expires_after(std::chrono::seconds(1));
  a->eof_timer.async_wait([a](error_code ec) {
    if (!ec && !a->eof) a->channel.close();
  });
}

void supervisor::finish(const std::shared_ptr<attempt>& a) {
  const auto& c = a->c;
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
    std::fflush(stdout);
    std::fwrite(printed.data(), 1, printed.size(), stderr);
    std::fflush(stderr);
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
    fields["state"] = reports.exception ? "failed" : "crashed";
    fields["exitcode"] = code;
    fields["crash_report"] = report;
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
  fields["state"] = state;
  fields["exitcode"] = code;
  if (!report.empty()) fields["crash_report"] = report;
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
  asio::post(io_, [this, c, w = std::move(w)]() mutable {
    {
      std::lock_guard lock(c->m);
      c->waiters.push_back(std::move(w));
      if (!c->done) {
        auto& added = c->waiters.back();
        if (auto slot = asio::get_associated_cancellation_slot(added.handler); slot.is_connected()) {
          const auto id = added.id;
          slot.assign([this, c, id](asio::cancellation_type) { cancel_waiter(c, id); });
        }
        return;
      }
    }
    complete(c);
  });
}

void supervisor::cancel_waiter(const std::shared_ptr<child>& c, std::uint64_t id) {
  asio::post(io_, [this, c, id] {
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
    if (!w) return;
    if (auto slot = asio::get_associated_cancellation_slot(w->handler); slot.is_connected())
      slot.clear();
    auto e = std::make_exception_ptr(
        boost::system::system_error(asio::error::operation_aborted, "zproc: async_wait"));
    asio::post(io_, asio::append(std::move(w->handler), e, std::string()));
  });
}

void supervisor::stop(const std::shared_ptr<child>& c, bool wait) {
  bool first;
  {
    std::lock_guard lock(c->m);
    if (c->done) return;
    first = !c->stopping;
    c->stopping = true;
  }
  if (first) {
    asio::post(io_, [this, c] {
      if (auto r = retrying_.find(c.get()); r != retrying_.end()) {
        r->second->cancel();  // its handler sees `stopping` and settles at once
        return;
      }
      auto it = running_.find(c.get());
      if (it == running_.end() || it->second->exited) return;
      auto a = it->second;
      ::kill(a->pid, SIGTERM);
      a->kill_timer.expires_after(c->options.stop_grace);
      a->kill_timer.async_wait([a](error_code ec) {
        if (!ec && !a->exited) ::kill(a->pid, SIGKILL);
      });
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
