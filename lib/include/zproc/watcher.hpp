// zproc/watcher.hpp - wait for changes of the state: co_await w.async_next(), or w.next(), or
// a range-for. Watchers walk the server's history by revision: a non-live watcher sees every
// matching update after its start, in order, exactly once, however fast the writers are.
#pragma once

#include <zproc/client.hpp>
#include <zproc/error.hpp>
#include <zproc/json.hpp>
#include <zproc/update.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>

namespace zproc {

struct watch_options {
  /// Skip the backlog: each next() waits for an update made after it was asked (and a snapshot
  /// watcher jumps to the newest state). Default: walk every update after the start.
  bool live = false;
  /// Deadline of each next(); on expiry it fails with client_errc::timeout and the watcher
  /// stays usable (no update is lost: the next call returns it). Default: wait until a change.
  std::optional<std::chrono::milliseconds> timeout;
  /// Also report writes that changed nothing (e.g. setting a key to the value it has).
  bool identical_okay = false;
  /// Report the updates after this revision; 0 = everything the server still keeps.
  /// Default: the revision at the moment the watcher is created.
  std::optional<std::uint64_t> start;
  /// Stop after this many updates: next() then returns an empty optional.
  std::optional<std::size_t> count;
  /// With keys: watch every key *except* these.
  bool exclude = false;
  /// Also report the writes of the state handle object that created the watcher (hidden by
  /// default, as in ZProc). Copies of that handle are other writers: their writes are reported.
  bool include_own = false;
};

namespace detail {
class watch_core;
}

/// The common part of watchers: the cursor and the pending request.
class watcher_base {
 public:
  using executor_type = client::executor_type;

  watcher_base(watcher_base&&) noexcept = default;
  watcher_base& operator=(watcher_base&&) noexcept = default;
  ~watcher_base();  ///< cancels the pending request on the server

  /// The revision of the last update returned (or the start revision before the first).
  std::uint64_t revision() const;
  /// Number of updates returned so far.
  std::size_t returned() const;
  executor_type get_executor() const;

  /// Internal.
  explicit watcher_base(std::shared_ptr<detail::watch_core> core) : core_(std::move(core)) {}
  /// Internal: gives up the watch without cancelling it (one-shot waits).
  std::shared_ptr<detail::watch_core> release() && { return std::move(core_); }

 protected:
  std::shared_ptr<detail::watch_core> core_;
};

namespace detail {
void start_next(const std::shared_ptr<watch_core>& core,
                boost::asio::any_completion_handler<void(error_code, std::optional<json>)> h,
                diagnostics_ptr diagnostics);
void start_next(const std::shared_ptr<watch_core>& core,
                boost::asio::any_completion_handler<void(error_code, std::optional<update>)> h,
                diagnostics_ptr diagnostics);
/// next() of a watcher nobody else holds: the watch lives until it completes.
void start_next_once(const std::shared_ptr<watch_core>& core,
                     boost::asio::any_completion_handler<void(error_code, std::optional<json>)> h,
                     diagnostics_ptr diagnostics);
std::optional<json> next_snapshot(const std::shared_ptr<watch_core>& core);
std::optional<update> next_update(const std::shared_ptr<watch_core>& core);
std::optional<json> next_snapshot(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag);
std::optional<update> next_update(const std::shared_ptr<watch_core>& core, error_code& ec,
                                  diagnostics& diag);

/// Input iterator over a watcher's next() results (blocking).
template <class W, class T>
class watch_iterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  using pointer = const T*;
  using reference = const T&;

  watch_iterator() = default;
  explicit watch_iterator(W* w) : w_(w) { ++*this; }
  reference operator*() const { return *value_; }
  pointer operator->() const { return &*value_; }
  watch_iterator& operator++() {
    value_ = w_->next();
    if (!value_) w_ = nullptr;
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const watch_iterator& a, const watch_iterator& b) { return a.w_ == b.w_; }

 private:
  W* w_ = nullptr;
  std::optional<T> value_;
};
}  // namespace detail

/// Yields snapshots: the whole namespace (a JSON object) as it was right after each matching
/// update. Made by state::when_change(), when(), when_equal(), ...
class watcher : public watcher_base {
 public:
  using watcher_base::watcher_base;

  /// The next snapshot; an empty optional once `count` updates were returned.
  /// Completion: void(error_code, std::optional<json>). Errors: client_errc::timeout (per
  /// watch_options::timeout), server_errc::compacted (the start is older than the history),
  /// client_errc::connection_closed. Supports terminal cancellation; the watcher stays usable.
  /// One next() at a time: an overlapping call fails with asio::error::in_progress.
  template <class CompletionToken = default_token>
  auto async_next(CompletionToken&& token = default_token{}) {
    return detail::initiate<void(error_code, std::optional<json>)>(
        [](auto h, const std::shared_ptr<detail::watch_core>& core) {
          auto diagnostics = detail::diagnostics_of(h);
          detail::start_next(core,
                             boost::asio::any_completion_handler<void(
                                 error_code, std::optional<json>)>(std::move(h)),
                             std::move(diagnostics));
        },
        token, core_);
  }
  /// Blocking twin; throws zproc::error.
  std::optional<json> next() { return detail::next_snapshot(core_); }
  /// Blocking, throwing nothing: a failure sets `ec` and `diag.message()` and returns an empty
  /// optional (as the end of a `count` does: tell them apart by `ec`).
  std::optional<json> next(error_code& ec, diagnostics& diag) {
    return detail::next_snapshot(core_, ec, diag);
  }

  using iterator = detail::watch_iterator<watcher, json>;
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }
};

/// Yields update records (revision, time, writer, changed keys with before/after values).
/// Made by state::when_change_raw().
class raw_watcher : public watcher_base {
 public:
  using watcher_base::watcher_base;

  /// As watcher::async_next, with update records. Completion: void(error_code,
  /// std::optional<update>).
  template <class CompletionToken = default_token>
  auto async_next(CompletionToken&& token = default_token{}) {
    return detail::initiate<void(error_code, std::optional<update>)>(
        [](auto h, const std::shared_ptr<detail::watch_core>& core) {
          auto diagnostics = detail::diagnostics_of(h);
          detail::start_next(core,
                             boost::asio::any_completion_handler<void(
                                 error_code, std::optional<update>)>(std::move(h)),
                             std::move(diagnostics));
        },
        token, core_);
  }
  std::optional<update> next() { return detail::next_update(core_); }
  std::optional<update> next(error_code& ec, diagnostics& diag) {
    return detail::next_update(core_, ec, diag);
  }

  using iterator = detail::watch_iterator<raw_watcher, update>;
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }
};

}  // namespace zproc
