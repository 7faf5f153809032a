#include "client/async_runner.hpp"
#include "process/supervisor.hpp"

#include <zproc/error.hpp>
#include <zproc/process.hpp>

#include <boost/core/demangle.hpp>

#include <signal.h>
#include <unistd.h>

#include <stdexcept>

namespace zproc {
namespace {

const detail::child& checked(const std::shared_ptr<detail::child>& c) {
  if (!c) throw std::logic_error("zproc: empty zproc::process handle");
  return *c;
}

}  // namespace

std::int64_t process::pid() const {
  const auto& c = checked(c_);
  std::lock_guard lock(c.m);
  return c.pid;
}

bool process::is_alive() const {
  const auto& c = checked(c_);
  std::lock_guard lock(c.m);
  return c.running;
}

std::optional<int> process::exitcode() const {
  const auto& c = checked(c_);
  std::lock_guard lock(c.m);
  if (c.running) return std::nullopt;
  return c.exitcode;
}

const std::string& process::target() const { return checked(c_).target; }

std::size_t process::attempts() const {
  const auto& c = checked(c_);
  std::lock_guard lock(c.m);
  return c.attempts;
}

std::string process::wait_raw(std::chrono::milliseconds timeout, const char* type,
                              error_code& ec, diagnostics& diag) const {
  ec.clear();
  diag.clear();
  auto& c = const_cast<detail::child&>(checked(c_));
  std::unique_lock lock(c.m);
  auto done = [&] { return c.done; };
  if (timeout == std::chrono::milliseconds::zero()) {
    c.cv.wait(lock, done);
  } else if (!c.cv.wait_for(lock, timeout, done)) {
    ec = client_errc::timeout;
    detail::diagnostics_access::set_message(
        diag, "process '" + c.target + "' (pid " + std::to_string(c.pid) + ") still running after " +
                  std::to_string(timeout.count()) + " ms");
    return {};
  }
  std::exception_ptr e = c.error ? c.error : process_detail::type_mismatch(c, type);
  if (e) {
    std::string message;
    ec = detail::failure_code(e, message);
    detail::diagnostics_access::set_exception(diag, e, std::move(message));
    return {};
  }
  return c.value;
}

void process::start_wait(std::shared_ptr<detail::child> c, const char* type, raw_handler h) {
  checked(c);
  std::uint64_t id;
  {
    std::lock_guard lock(c->m);
    id = ++c->next_waiter;
  }
  auto& sup = process_detail::supervisor::get();
  // Every cancellation type: the wait completes with operation_aborted, the process runs on.
  detail::run_async(
      sup.executor(), std::move(h), nullptr, boost::asio::cancellation_type::all,
      [&sup, c, id](const std::shared_ptr<detail::cancel_token>&) { sup.cancel_waiter(c, id); },
      [&sup, c, id, type](detail::basic_held_handler<std::exception_ptr, std::string>&& held,
                          const std::shared_ptr<detail::cancel_token>&) {
        sup.add_waiter(c, {id, type,
                           raw_handler([held = std::move(held)](std::exception_ptr e,
                                                                std::string value) mutable {
                             held.complete(false, std::move(e), std::move(value));
                           })});
      });
}

void process::stop() const {
  checked(c_);
  process_detail::supervisor::get().stop(c_);
}

void process::signal(int sig) const {
  const auto& c = checked(c_);
  std::shared_ptr<process_detail::proc_ref> running;
  {
    std::lock_guard lock(c.m);
    running = c.current;
  }
  if (running) running->signal(sig);  // never to a pid reaped (and maybe reused) since
}

error_code detail::failure_code(const std::exception_ptr& e, std::string& message) {
  try {
    std::rethrow_exception(e);
  } catch (const zproc::error& x) {
    message = x.diagnostics();
    return x.code();
  } catch (const remote_error& x) {
    message = x.what();
    return process_errc::remote_exception;
  } catch (const task_lost_error& x) {
    message = x.what();
    return process_errc::task_lost;
  } catch (const process_error& x) {
    message = x.what();
    return process_errc::exited;
  } catch (const boost::system::system_error& x) {
    message = x.what();
    return x.code();
  } catch (const std::invalid_argument& x) {
    message = x.what();
    return process_errc::wrong_result_type;
  } catch (const std::exception& x) {
    message = std::string("the result could not be read: ") + x.what();
  } catch (...) {
    message = "the result could not be read";
  }
  return client_errc::protocol_error;
}

std::string to_string(const process& p) {
  const auto code = p.exitcode();
  return "Process - pid: " + std::to_string(p.pid()) + " target: '" + p.target() +
         "' ppid: " + std::to_string(::getpid()) + " is_alive: " + (p.is_alive() ? "true" : "false") +
         " exitcode: " + (code ? std::to_string(*code) : std::string("none"));
}

}  // namespace zproc
