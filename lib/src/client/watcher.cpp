// zproc::watcher and raw_watcher: the type-erased front of watch_core.
#include "protocol/records.hpp"
#include "client/async_runner.hpp"
#include "client/completion.hpp"
#include "client/watch_core.hpp"

#include <zproc/watcher.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

namespace zproc {
namespace detail {

namespace asio = boost::asio;

namespace {

update to_update(const json& r) { return protocol::update_from_wire(r); }

}  // namespace
}  // namespace detail

namespace detail {
namespace {

template <class T>
std::optional<T> convert_item(std::optional<json>&& item) {
  if (!item) return std::nullopt;
  if constexpr (std::is_same_v<T, json>) {
    return std::move(item);
  } else {
    return to_update(*item);
  }
}

template <class T>
class handler_next_op final : public next_op {
 public:
  explicit handler_next_op(held_handler<std::optional<T>>&& h) : h_(std::move(h)) {}

  void complete(error_code ec, std::optional<json> item, std::string message,
                bool must_post) override {
    std::optional<T> value;
    if (!ec) {
      try {
        value = convert_item<T>(std::move(item));
      } catch (const json::exception& e) {
        ec = client_errc::protocol_error;
        message = std::string("malformed update record: ") + e.what();
      }
    }
    if (ec) h_.set_message(std::move(message));
    h_.complete(must_post, ec, std::move(value));
  }

 private:
  held_handler<std::optional<T>> h_;
};

class blocking_next_op final : public next_op {
 public:
  explicit blocking_next_op(std::shared_ptr<blocking_result> r) : r_(std::move(r)) {}
  void complete(error_code ec, std::optional<json> item, std::string message, bool) override {
    r_->set(ec, item ? std::move(*item) : json(json::value_t::discarded), std::move(message));
  }

 private:
  std::shared_ptr<blocking_result> r_;
};


template <class T, class Handler>
void start_next_impl(const std::shared_ptr<watch_core>& core, Handler h, bool once,
                     diagnostics_ptr diagnostics) {
  // Terminal and partial cancellation: the waiting next() completes with operation_aborted,
  // the watcher's cursor stays where it was (the next next() sees what this one would have).
  run_client_async(
      core->client(), std::move(h), std::move(diagnostics), cancel_terminal_or_partial,
      [weak = std::weak_ptr<watch_core>(core)](const std::shared_ptr<cancel_token>& token) {
        if (auto c = weak.lock()) c->cancel_next(token);
      },
      [core, once](held_handler<std::optional<T>>&& held, std::shared_ptr<cancel_token> token) {
        auto op = std::make_unique<handler_next_op<T>>(std::move(held));
        op->token = std::move(token);
        if (once) core->keep_alive();
        core->next(std::move(op), true);
      });
}

}  // namespace

void start_next(const std::shared_ptr<watch_core>& core,
                asio::any_completion_handler<void(error_code, std::optional<json>)> h,
                diagnostics_ptr diagnostics) {
  start_next_impl<json>(core, std::move(h), false, std::move(diagnostics));
}

void start_next(const std::shared_ptr<watch_core>& core,
                asio::any_completion_handler<void(error_code, std::optional<update>)> h,
                diagnostics_ptr diagnostics) {
  start_next_impl<update>(core, std::move(h), false, std::move(diagnostics));
}

void start_next_once(const std::shared_ptr<watch_core>& core,
                     asio::any_completion_handler<void(error_code, std::optional<json>)> h,
                     diagnostics_ptr diagnostics) {
  start_next_impl<json>(core, std::move(h), true, std::move(diagnostics));
}

namespace {
std::optional<json> next_blocking(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag) {
  ec.clear();
  diag.clear();
  auto r = std::make_shared<blocking_result>();
  core->client()->run_blocking(
      *r, [core, r] { core->next(std::make_unique<blocking_next_op>(r), true); },
      std::chrono::milliseconds(0),  // the watcher's own timeout applies (watch_options)
      [] {});
  std::lock_guard lock(r->mutex);
  if (r->ec) {
    ec = r->ec;
    diagnostics_access::set_message(diag, std::move(r->message));
    return std::nullopt;
  }
  if (r->value.is_discarded()) return std::nullopt;
  return std::move(r->value);
}

std::optional<json> next_blocking(const std::shared_ptr<watch_core>& core) {
  error_code ec;
  diagnostics diag;
  auto item = next_blocking(core, ec, diag);
  if (ec) throw zproc::error(ec, diag.message());
  return item;
}
}  // namespace

std::optional<json> next_snapshot(const std::shared_ptr<watch_core>& core) {
  return next_blocking(core);
}
std::optional<json> next_snapshot(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag) {
  return next_blocking(core, ec, diag);
}

std::optional<update> next_update(const std::shared_ptr<watch_core>& core) {
  auto item = next_blocking(core);
  if (!item) return std::nullopt;
  return to_update(*item);
}
std::optional<update> next_update(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag) {
  auto item = next_blocking(core, ec, diag);
  if (!item) return std::nullopt;
  return to_update(*item);
}

}  // namespace detail

watcher_base::~watcher_base() {
  if (core_) core_->close();
}
std::uint64_t watcher_base::revision() const { return core_->revision(); }
std::size_t watcher_base::returned() const { return core_->returned(); }
watcher_base::executor_type watcher_base::get_executor() const {
  return core_->client()->get_executor();
}

}  // namespace zproc
