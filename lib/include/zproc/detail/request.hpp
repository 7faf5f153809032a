// Private: the thin template front of every client operation. It hands the completion handler,
// type-erased, to compiled code (lib/src/client), so that users' builds stay fast.
#pragma once

#include <zproc/error.hpp>
#include <zproc/json.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zproc::detail {

class client_impl;

template <class T>
using handler = boost::asio::any_completion_handler<void(error_code, T)>;

/// Sends `request`; completes with the reply's result converted to T, on the handler's
/// associated executor. Explicitly instantiated for: json, bool, std::uint64_t, std::int64_t,
/// std::vector<std::string>, std::vector<json>, std::vector<std::pair<std::string, json>>,
/// std::pair<std::string, json>, std::vector<update>.
template <class T>
void start_request(const std::shared_ptr<client_impl>& c, json request, handler<T> h);

/// Blocking: sends `request` and waits (client_options::request_timeout at most). Throws
/// zproc::error carrying the server's diagnostics.
template <class T>
T call(const std::shared_ptr<client_impl>& c, json request);

template <class T, class CompletionToken>
auto async_request(const std::shared_ptr<client_impl>& c, json request, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void(error_code, T)>(
      [](auto h, const std::shared_ptr<client_impl>& impl, json req) {
        start_request<T>(impl, std::move(req), handler<T>(std::move(h)));
      },
      token, c, std::move(request));
}

/// One atomic() call: reads, commits, counts conflicts, and takes the namespace's lock after a
/// few of them. Releases the lock if it is destroyed holding it (an exception from the body).
class atomic_run {
 public:
  atomic_run(std::shared_ptr<client_impl> c, std::string ns, std::uint64_t handle,
             std::vector<std::string> keys, std::size_t optimistic_attempts);
  ~atomic_run();
  atomic_run(const atomic_run&) = delete;
  atomic_run& operator=(const atomic_run&) = delete;

  /// A fresh snapshot to run the body on.
  json read();
  /// Commits the body's changes to the snapshot; false on a conflict (run the body again).
  bool commit(const json& changed);

  std::size_t conflicts() const noexcept { return conflicts_; }

 private:
  std::shared_ptr<client_impl> c_;
  std::string ns_;
  std::uint64_t handle_;
  std::vector<std::string> keys_;
  json read_reply_;
  std::size_t conflicts_ = 0;
  std::size_t optimistic_attempts_;
  bool locked_ = false;
};

/// atomic()'s requests: read the namespace (or `keys`), and commit `changed` against what
/// `read_reply` returned (the changes are the difference between the two).
json atomic_read_request(const std::string& ns, const std::vector<std::string>& keys);
json atomic_commit_request(const std::string& ns, std::uint64_t handle,
                           const std::vector<std::string>& keys, const json& read_reply,
                           const json& changed);

/// The contention hint shared by atomic() and async_atomic() on one client: whether to take
/// the lock at once (recently contended), and the outcome of a call.
bool atomic_lock_first(const std::shared_ptr<client_impl>& c, const std::string& ns);
void atomic_done(const std::shared_ptr<client_impl>& c, const std::string& ns, bool needed_lock);

/// A request skeleton: {"o": op, "n": ns}.
json make_request(const char* op, const std::string& ns);
json make_request(const char* op, const std::string& ns, std::string key);

}  // namespace zproc::detail
