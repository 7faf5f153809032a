// zproc::watcher and raw_watcher: the type-erased front of watch_core.
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

/// The item as the watcher's type returns it (a watcher of snapshots gets json, one of
/// updates an update: the cursor makes the kind the watcher asked for).
template <class T>
std::optional<T> convert_item(std::optional<watch_value>&& item, error_code& ec,
                              std::string& message) {
  if (!item) return std::nullopt;
  if (T* v = std::get_if<T>(&*item)) return std::move(*v);
  ec = client_errc::protocol_error;
  message = "the watcher got an item of the other kind (a snapshot for an update, or back)";
  return std::nullopt;
}

template <class T>
class handler_next_op final : public next_op {
 public:
  explicit handler_next_op(held_handler<std::optional<T>>&& h) : h_(std::move(h)) {}

  void complete(error_code ec, std::optional<watch_value> item, std::string message,
                bool must_post) override {
    std::optional<T> value;
    if (!ec) value = convert_item<T>(std::move(item), ec, message);
    if (ec) h_.set_message(std::move(message));
    h_.complete(must_post, ec, std::move(value));
  }

 private:
  held_handler<std::optional<T>> h_;
};

/// A blocking next(): the item goes to `item` before the result is set (the waiting thread
/// reads it once the result is done).
class blocking_next_op final : public next_op {
 public:
  blocking_next_op(std::shared_ptr<blocking_result> r,
                   std::shared_ptr<std::optional<watch_value>> item)
      : r_(std::move(r)), item_(std::move(item)) {}
  void complete(error_code ec, std::optional<watch_value> item, std::string message,
                bool) override {
    *item_ = std::move(item);
    r_->set(ec, json(), std::move(message));
  }

 private:
  std::shared_ptr<blocking_result> r_;
  std::shared_ptr<std::optional<watch_value>> item_;
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
template <class T>
std::optional<T> next_blocking(const std::shared_ptr<watch_core>& core, error_code& ec,
                               diagnostics& diag) {
  ec.clear();
  diag.clear();
  auto r = std::make_shared<blocking_result>();
  auto item = std::make_shared<std::optional<watch_value>>();
  core->client()->run_blocking(
      *r, [core, r, item] { core->next(std::make_unique<blocking_next_op>(r, item), true); },
      std::chrono::milliseconds(0),  // the watcher's own timeout applies (watch_options)
      [] {});
  std::lock_guard lock(r->mutex);
  std::string message = std::move(r->message);
  ec = r->ec;
  std::optional<T> value;
  if (!ec) value = convert_item<T>(std::move(*item), ec, message);
  if (ec) diagnostics_access::set_message(diag, std::move(message));
  return value;
}

template <class T>
std::optional<T> next_blocking(const std::shared_ptr<watch_core>& core) {
  error_code ec;
  diagnostics diag;
  auto item = next_blocking<T>(core, ec, diag);
  if (ec) throw zproc::error(ec, diag.message());
  return item;
}
}  // namespace

std::optional<json> next_snapshot(const std::shared_ptr<watch_core>& core) {
  return next_blocking<json>(core);
}
std::optional<json> next_snapshot(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag) {
  return next_blocking<json>(core, ec, diag);
}

std::optional<update> next_update(const std::shared_ptr<watch_core>& core) {
  return next_blocking<update>(core);
}
std::optional<update> next_update(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag) {
  return next_blocking<update>(core, ec, diag);
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
