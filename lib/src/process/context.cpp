#include "process/child.hpp"
#include "process/registry.hpp"
#include "process/supervisor.hpp"

#include <zproc/log.hpp>
#include <zproc/address.hpp>
#include <zproc/context.hpp>

#include <boost/core/demangle.hpp>

#include <signal.h>

#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
#include <algorithm>

namespace zproc {

struct context::impl {
  context_options options;
  std::unique_ptr<server_thread> embedded;
  std::string address;
  std::string token;
  tls_options tls;
  std::mutex m;
  std::optional<zproc::client> conn;
  std::vector<process> procs;
};

context::context(context_options options) : impl_(std::make_unique<impl>()) {
  impl_->options = std::move(options);
  auto& o = impl_->options;
  if (!o.address.empty()) {
    impl_->address = o.address;
    impl_->token = o.token ? *o.token : token_from_env();
    impl_->tls = o.tls ? *o.tls : tls_options_from_env();
  } else if (const auto* t = process_detail::spawned_ticket()) {
    impl_->address = t->address;
    impl_->token = o.token ? *o.token : t->token;
    impl_->tls = o.tls ? *o.tls : t->tls;
  } else {
    auto& access = o.server.access;
    if (o.token && !o.token->empty() && access.tokens.empty())
      access.tokens.push_back({*o.token, {}});
    if (o.server.needs_token()) access.tokens.push_back({generate_token(), {}});
    impl_->token = o.token ? *o.token : access.tokens.empty() ? "" : access.tokens.front().secret;
    impl_->tls = o.tls ? *o.tls : tls_options{};
    impl_->embedded = std::make_unique<server_thread>(o.server);
    impl_->address = impl_->embedded->address();
  }
}

context::~context() {
  std::vector<process> procs;
  {
    std::lock_guard lock(impl_->m);
    procs = impl_->procs;
  }
  if (impl_->options.wait) {
    for (const auto& p : procs) {
      try {
        p.wait<void>();
      } catch (...) {  // the failure was reported (crash report); the handle still has it
      }
    }
  }
  if (impl_->options.cleanup) {
    std::vector<process> running;
    for (const auto& p : procs)
      if (p.is_alive()) running.push_back(p);
    for (const auto& p : running) {
      detail::log(log_level::info, "process",
                  "Cleaning up '" + p.target() + "' (" + std::to_string(p.pid()) + ")...");
      process_detail::supervisor::get().stop(p.impl(), false);  // all at once, then wait
    }
    for (const auto& p : running) p.stop();
  }
}

std::string context::address() const { return impl_->address; }
const std::string& context::token() const noexcept { return impl_->token; }

client_options context::connect_options() const {
  client_options co;
  co.token = impl_->token;
  co.tls = impl_->tls;
  return co;
}
const std::string& context::ns() const noexcept { return impl_->options.ns; }
std::int64_t context::ping() { return client().ping(); }

zproc::client& context::client() {
  std::lock_guard lock(impl_->m);
  if (!impl_->conn) {
    zproc::client c(connect_options());
    c.connect(impl_->address);
    impl_->conn.emplace(std::move(c));
  }
  return *impl_->conn;
}

zproc::state context::create_state(const json& initial, std::string ns) {
  zproc::state st(client(), ns.empty() ? impl_->options.ns : std::move(ns));
  if (!initial.is_null()) st.replace(initial);
  return st;
}

std::shared_ptr<detail::child> context::make_child(const spawn_options& options) const {
  auto c = std::make_shared<detail::child>();
  c->options = options;
  c->die_with_parent = impl_->options.cleanup;
  c->ticket.address = impl_->address;
  c->ticket.token = impl_->token;
  c->ticket.tls = impl_->tls;
  c->ticket.ns = options.ns.empty() ? impl_->options.ns : options.ns;
  return c;
}

process context::launch(std::shared_ptr<detail::child> c) {
  std::fflush(nullptr);  // what the parent printed comes before what the child prints
  process_detail::supervisor::get().launch(c);
  process p(std::move(c));
  std::lock_guard lock(impl_->m);
  // Forget the processes that ended and that no handle refers to any more: a context that
  // spawns for days does not grow.
  std::erase_if(impl_->procs, [](const process& q) {
    return q.impl().use_count() == 1 && !q.is_alive() && q.exitcode().has_value();
  });
  impl_->procs.push_back(p);
  return p;
}

process context::spawn_target(const spawn_options& options, const void* target, std::string args,
                              std::vector<std::string> arg_types, const char* value_type) {
  const detail::target_info& info = process_detail::target_at(target);
  auto c = make_child(options);
  c->target = info.name;
  c->value_type = value_type;
  if (!options.retry_args.empty()) {
    if (options.retry_args.types != arg_types) {
      std::string want;
      for (const auto& t : arg_types) want += (want.empty() ? "" : ", ") + boost::core::demangle(t.c_str());
      throw std::invalid_argument("zproc: retry_args do not match the parameters of target '" +
                                  c->target + "' (" + want + ")");
    }
    c->retry_args = options.retry_args.bytes;
    c->has_retry_args = true;
  }
  c->ticket.target = c->target;
  c->ticket.args = std::move(args);
  for (const auto& r : options.retry_for)
    if (!r.exception_type.empty()) c->ticket.retry_types.push_back(r.exception_type);
  return launch(std::move(c));
}

process context::spawn_command(const std::string& path, const std::vector<std::string>& args,
                               const spawn_options& options) {
  auto c = make_child(options);
  c->target = path;
  c->value_type = typeid(void).name();
  c->command = true;
  c->command_args = args;
  return launch(std::move(c));
}

std::size_t context::default_swarm_size() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

std::vector<process> context::processes() const {
  std::lock_guard lock(impl_->m);
  return impl_->procs;
}

void context::wait_all(std::chrono::milliseconds timeout) {
  const detail::deadline until(timeout);
  std::exception_ptr first_failure;
  for (const auto& p : processes()) {
    try {
      p.wait<void>(until.left());
    } catch (const process_error&) {  // waits for the others first (ZProc's ctx.wait() raises)
      if (!first_failure) first_failure = std::current_exception();
    }
  }
  if (first_failure) std::rethrow_exception(first_failure);
}

void context::stop_all() {
  for (const auto& p : processes()) p.stop();
}

}  // namespace zproc
