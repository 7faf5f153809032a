// zproc/state.hpp - a handle on one namespace of the server's state: a dict of JSON values.
#pragma once

#include <zproc/client.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <zproc/detail/atomic.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/json.hpp>
#include <zproc/transaction.hpp>
#include <zproc/update.hpp>
#include <zproc/watcher.hpp>

#include <exception>
#include <functional>
#include <type_traits>
#include <optional>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zproc {

/// Which page of a namespace to read (state::keys_page(), state::items_page()): the keys that
/// start with `prefix`, in key order, after the key `after`, at most `limit` of them.
/// A page also stops early once its reply would exceed about half a frame
/// (client_options::max_frame_size / 2, at most 4 MiB): a page of big values is shorter, never
/// too large, and holds at least one key.
struct page_request {
  /// Start after this key (exclusive); none: at the first key. The `next` of the previous page.
  std::optional<std::string> after;
  /// Only keys that start with this ("": every key).
  std::string prefix;
  /// At most this many keys (the server clamps it to 1..100,000).
  std::size_t limit = 1000;
};

/// One page of keys, in key order. `next`: set if more keys may follow (it is the page's last
/// key: pass it as page_request::after); none if this page is the last.
struct key_page {
  /// The page's keys, in key order (empty after the last key).
  std::vector<std::string> keys;
  /// Where the next page starts (the last key here), or none if this page is the last.
  std::optional<std::string> next;
};

/// One page of (key, value) pairs, in key order; `next` as in key_page.
struct item_page {
  /// The page's (key, value) pairs, in key order (empty after the last key).
  std::vector<std::pair<std::string, json>> items;
  /// Where the next page starts (the last key here), or none if this page is the last.
  std::optional<std::string> next;
};

void from_json(const json& j, key_page& p);
void from_json(const json& j, item_page& p);

/// The dict API of ZProc, as one atomic server-side step per call. Every operation comes three
/// times: `async_xxx(..., token)` (default token: `co_await st.async_get("k")`), a blocking
/// `xxx(...)` that throws zproc::error with the server's message, and a blocking
/// `xxx(..., error_code& ec, diagnostics& diag)` that throws nothing: on failure it sets `ec`
/// and `diag.message()` (the server's message) and returns a default value; on success it
/// clears both. (An exception still escapes it for what is not an error of the operation:
/// std::bad_alloc.)
///
/// Writes complete with the namespace's revision after the write (it grows by one per write).
/// Async operations support terminal and partial cancellation: the handler completes at once
/// with asio::error::operation_aborted and the connection stays usable; a write that was
/// already sent may still take effect on the server.
///
/// A state is a cheap handle (it shares its client's connection); copies share it too.
///
/// Own writes: a watcher hides the writes of the handle *object* that made it (unless
/// watch_options::include_own). A copy is another writer: pass `st` by value to a producer and a
/// consumer, and the consumer's watcher sees every write of the producer's copy. A moved-to
/// handle keeps the writer identity of the handle it was moved from.
class state {
 public:
  using executor_type = client::executor_type;

  /// A handle on namespace `ns` through `c`'s connection. The connection stays open as long as a
  /// client or a state using it exists.
  explicit state(const client& c, std::string ns = "default");

  /// The same connection and namespace; a writer of its own (see "Own writes" above).
  state(const state& other);
  state& operator=(const state& other);
  state(state&&) noexcept = default;
  state& operator=(state&&) noexcept = default;
  ~state() = default;

  /// The same connection, another namespace.
  state fork(std::string ns) const { return state(impl_, std::move(ns)); }
  const std::string& name() const noexcept { return ns_; }
  executor_type get_executor() const noexcept;

  // --- reads --------------------------------------------------------------------------------

  /// The value of `key`; server_errc::key_not_found if absent. Completion: void(error_code, json)
  template <class CompletionToken = default_token>
  auto async_get(std::string key, CompletionToken&& token = default_token{}) const {
    return run<json>(req(op::get, std::move(key)), std::forward<CompletionToken>(token));
  }
  json get(std::string key) const { return call<json>(req(op::get, std::move(key))); }
  json get(std::string key, error_code& ec, diagnostics& diag) const {
    return call<json>(req(op::get, std::move(key)), ec, diag);
  }

  /// The value of `key`, or `fallback` if absent.
  template <class CompletionToken = default_token>
  auto async_get(std::string key, json fallback, CompletionToken&& token = default_token{}) const {
    return run<json>(detail::with_fallback(req(op::get, std::move(key)), std::move(fallback)),
                     std::forward<CompletionToken>(token));
  }
  json get(std::string key, json fallback) const {
    return call<json>(detail::with_fallback(req(op::get, std::move(key)), std::move(fallback)));
  }
  json get(std::string key, json fallback, error_code& ec, diagnostics& diag) const {
    return call<json>(detail::with_fallback(req(op::get, std::move(key)), std::move(fallback)), ec, diag);
  }

  /// Whether `key` is present. Completion: void(error_code, bool)
  template <class CompletionToken = default_token>
  auto async_contains(std::string key, CompletionToken&& token = default_token{}) const {
    return run<bool>(req(op::contains, std::move(key)), std::forward<CompletionToken>(token));
  }
  bool contains(std::string key) const { return call<bool>(req(op::contains, std::move(key))); }
  bool contains(std::string key, error_code& ec, diagnostics& diag) const {
    return call<bool>(req(op::contains, std::move(key)), ec, diag);
  }

  /// Number of keys. Completion: void(error_code, std::uint64_t)
  template <class CompletionToken = default_token>
  auto async_size(CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req(op::size), std::forward<CompletionToken>(token));
  }
  std::uint64_t size() const { return call<std::uint64_t>(req(op::size)); }
  std::uint64_t size(error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(req(op::size), ec, diag);
  }

  /// Keys in order, in one reply: server_errc::reply_too_large past about 800,000 short keys
  /// (read those with keys_page() or for_each_key()).
  /// Completion: void(error_code, std::vector<std::string>)
  template <class CompletionToken = default_token>
  auto async_keys(CompletionToken&& token = default_token{}) const {
    return run<std::vector<std::string>>(req(op::keys), std::forward<CompletionToken>(token));
  }
  std::vector<std::string> keys() const { return call<std::vector<std::string>>(req(op::keys)); }
  std::vector<std::string> keys(error_code& ec, diagnostics& diag) const {
    return call<std::vector<std::string>>(req(op::keys), ec, diag);
  }

  /// Values in key order, in one reply (big namespaces: items_page()).
  /// Completion: void(error_code, std::vector<json>)
  template <class CompletionToken = default_token>
  auto async_values(CompletionToken&& token = default_token{}) const {
    return run<std::vector<json>>(req(op::values), std::forward<CompletionToken>(token));
  }
  std::vector<json> values() const { return call<std::vector<json>>(req(op::values)); }
  std::vector<json> values(error_code& ec, diagnostics& diag) const {
    return call<std::vector<json>>(req(op::values), ec, diag);
  }

  using item = std::pair<std::string, json>;

  /// (key, value) pairs in key order, in one reply (big namespaces: items_page(),
  /// for_each_item()). Completion: void(error_code, std::vector<item>)
  template <class CompletionToken = default_token>
  auto async_items(CompletionToken&& token = default_token{}) const {
    return run<std::vector<item>>(req(op::items), std::forward<CompletionToken>(token));
  }
  std::vector<item> items() const { return call<std::vector<item>>(req(op::items)); }
  std::vector<item> items(error_code& ec, diagnostics& diag) const {
    return call<std::vector<item>>(req(op::items), ec, diag);
  }

  /// The whole namespace as one JSON object (a snapshot), in one reply (big namespaces:
  /// items_page(), for_each_item()). Completion: void(error_code, json)
  template <class CompletionToken = default_token>
  auto async_copy(CompletionToken&& token = default_token{}) const {
    return run<json>(req(op::copy), std::forward<CompletionToken>(token));
  }
  json copy() const { return call<json>(req(op::copy)); }
  json copy(error_code& ec, diagnostics& diag) const {
    return call<json>(req(op::copy), ec, diag);
  }

  // --- big namespaces, page by page -------------------------------------------------------
  // keys(), items() and copy() answer in one reply, which cannot exceed the maximum frame
  // (8 MiB: about 800,000 short keys): past that they fail with server_errc::reply_too_large.
  // Read a big namespace page by page instead. Each page is one atomic read; the pages of one
  // walk are not one snapshot (a key written meanwhile may or may not appear), but every key
  // present throughout the walk appears exactly once, in order.

  /// One page of keys (see page_request). O(log n + page) on the server.
  /// Completion: void(error_code, key_page)
  template <class CompletionToken = default_token>
  auto async_keys_page(page_request page, CompletionToken&& token = default_token{}) const {
    return run<key_page>(page_req(op::keys, std::move(page)),
                         std::forward<CompletionToken>(token));
  }
  key_page keys_page(page_request page) const {
    return call<key_page>(page_req(op::keys, std::move(page)));
  }
  key_page keys_page(page_request page, error_code& ec, diagnostics& diag) const {
    return call<key_page>(page_req(op::keys, std::move(page)), ec, diag);
  }

  /// One page of (key, value) pairs (see page_request). Completion: void(error_code, item_page)
  template <class CompletionToken = default_token>
  auto async_items_page(page_request page, CompletionToken&& token = default_token{}) const {
    return run<item_page>(page_req(op::items, std::move(page)),
                          std::forward<CompletionToken>(token));
  }
  item_page items_page(page_request page) const {
    return call<item_page>(page_req(op::items, std::move(page)));
  }
  item_page items_page(page_request page, error_code& ec, diagnostics& diag) const {
    return call<item_page>(page_req(op::items, std::move(page)), ec, diag);
  }

  /// Calls `fn(key)` for every key that starts with `page.prefix` (after `page.after`), in
  /// order, reading `page.limit` keys per request (blocking). Returns how many it visited.
  template <class F>
  std::uint64_t for_each_key(F&& fn, page_request page = {.limit = 10'000}) const {
    std::uint64_t n = 0;
    for (;;) {
      key_page p = keys_page(page);
      for (auto& k : p.keys) fn(std::move(k));
      n += p.keys.size();
      if (!p.next) return n;
      page.after = std::move(p.next);
    }
  }

  /// Calls `fn(key, value)` for every pair as for_each_key() does for keys. Returns how many.
  template <class F>
  std::uint64_t for_each_item(F&& fn, page_request page = {.limit = 10'000}) const {
    std::uint64_t n = 0;
    for (;;) {
      item_page p = items_page(page);
      for (auto& [k, v] : p.items) fn(std::move(k), std::move(v));
      n += p.items.size();
      if (!p.next) return n;
      page.after = std::move(p.next);
    }
  }

  /// The namespace's current revision (0 before the first write).
  template <class CompletionToken = default_token>
  auto async_revision(CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req(op::revision), std::forward<CompletionToken>(token));
  }
  std::uint64_t revision() const { return call<std::uint64_t>(req(op::revision)); }
  std::uint64_t revision(error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(req(op::revision), ec, diag);
  }

  // --- writes: each completes with the revision after the write -----------------------------

  /// state[key] = value. Completion: void(error_code, std::uint64_t revision)
  template <class CompletionToken = default_token>
  auto async_set(std::string key, json value, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(detail::with_value(req(op::set, std::move(key)), std::move(value)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t set(std::string key, json value) const {
    return call<std::uint64_t>(detail::with_value(req(op::set, std::move(key)), std::move(value)));
  }
  std::uint64_t set(std::string key, json value, error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(detail::with_value(req(op::set, std::move(key)), std::move(value)), ec, diag);
  }

  /// del state[key]; server_errc::key_not_found if absent. Completion: (error_code, revision)
  template <class CompletionToken = default_token>
  auto async_erase(std::string key, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req(op::del, std::move(key)), std::forward<CompletionToken>(token));
  }
  std::uint64_t erase(std::string key) const {
    return call<std::uint64_t>(req(op::del, std::move(key)));
  }
  std::uint64_t erase(std::string key, error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(req(op::del, std::move(key)), ec, diag);
  }

  /// Sets every key of `object` (a JSON object; else server_errc::wrong_type), as one write.
  template <class CompletionToken = default_token>
  auto async_update(json object, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(detail::with_value(req(op::update), std::move(object)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t update(json object) const {
    return call<std::uint64_t>(detail::with_value(req(op::update), std::move(object)));
  }
  std::uint64_t update(json object, error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(detail::with_value(req(op::update), std::move(object)), ec, diag);
  }

  /// Replaces the whole namespace with `object` (ZProc's `state.set(value)`), as one write.
  template <class CompletionToken = default_token>
  auto async_replace(json object, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(detail::with_value(req(op::replace), std::move(object)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t replace(json object) const {
    return call<std::uint64_t>(detail::with_value(req(op::replace), std::move(object)));
  }
  std::uint64_t replace(json object, error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(detail::with_value(req(op::replace), std::move(object)), ec, diag);
  }

  /// Removes every key, as one write.
  template <class CompletionToken = default_token>
  auto async_clear(CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req(op::clear), std::forward<CompletionToken>(token));
  }
  std::uint64_t clear() const { return call<std::uint64_t>(req(op::clear)); }
  std::uint64_t clear(error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(req(op::clear), ec, diag);
  }

  /// Removes `key` and returns its value; key_not_found if absent. Completion: (ec, json)
  template <class CompletionToken = default_token>
  auto async_pop(std::string key, CompletionToken&& token = default_token{}) const {
    return run<json>(req(op::pop, std::move(key)), std::forward<CompletionToken>(token));
  }
  json pop(std::string key) const { return call<json>(req(op::pop, std::move(key))); }
  json pop(std::string key, error_code& ec, diagnostics& diag) const {
    return call<json>(req(op::pop, std::move(key)), ec, diag);
  }

  /// Removes `key` and returns its value, or returns `fallback` (no write) if absent.
  template <class CompletionToken = default_token>
  auto async_pop(std::string key, json fallback, CompletionToken&& token = default_token{}) const {
    return run<json>(detail::with_fallback(req(op::pop, std::move(key)), std::move(fallback)),
                     std::forward<CompletionToken>(token));
  }
  json pop(std::string key, json fallback) const {
    return call<json>(detail::with_fallback(req(op::pop, std::move(key)), std::move(fallback)));
  }
  json pop(std::string key, json fallback, error_code& ec, diagnostics& diag) const {
    return call<json>(detail::with_fallback(req(op::pop, std::move(key)), std::move(fallback)), ec, diag);
  }

  /// Removes and returns the last (key, value) in key order; server_errc::empty_namespace if
  /// empty. Completion: void(error_code, item)
  template <class CompletionToken = default_token>
  auto async_popitem(CompletionToken&& token = default_token{}) const {
    return run<item>(req(op::popitem), std::forward<CompletionToken>(token));
  }
  item popitem() const { return call<item>(req(op::popitem)); }
  item popitem(error_code& ec, diagnostics& diag) const {
    return call<item>(req(op::popitem), ec, diag);
  }

  /// The value of `key`; if absent, sets it to `fallback` (one write) and returns that.
  template <class CompletionToken = default_token>
  auto async_setdefault(std::string key, json fallback,
                        CompletionToken&& token = default_token{}) const {
    return run<json>(detail::with_fallback(req(op::setdefault, std::move(key)), std::move(fallback)),
                     std::forward<CompletionToken>(token));
  }
  json setdefault(std::string key, json fallback) const {
    return call<json>(detail::with_fallback(req(op::setdefault, std::move(key)), std::move(fallback)));
  }
  json setdefault(std::string key, json fallback, error_code& ec, diagnostics& diag) const {
    return call<json>(detail::with_fallback(req(op::setdefault, std::move(key)), std::move(fallback)), ec, diag);
  }

  // --- atomic operations ----------------------------------------------------------------
  // Each is one step on the server: no other write can come between its read and its write.

  /// Adds `delta` (a number; an absent key counts as 0) and returns the new value.
  /// server_errc::wrong_type if the key holds something else. Completion: void(error_code, json)
  template <class CompletionToken = default_token>
  auto async_increment(std::string key, json delta = 1,
                       CompletionToken&& token = default_token{}) const {
    return run<json>(detail::with_value(req(op::incr, std::move(key)), std::move(delta)),
                     std::forward<CompletionToken>(token));
  }
  json increment(std::string key, json delta = 1) const {
    return call<json>(detail::with_value(req(op::incr, std::move(key)), std::move(delta)));
  }
  json increment(std::string key, json delta, error_code& ec, diagnostics& diag) const {
    return call<json>(detail::with_value(req(op::incr, std::move(key)), std::move(delta)), ec, diag);
  }

  /// Sets `key` to `desired` if it holds `expected` (an empty optional: if it is absent, i.e.
  /// "create only if absent"); returns whether it did. Completion: void(error_code, bool)
  template <class CompletionToken = default_token>
  auto async_compare_and_set(std::string key, std::optional<json> expected, json desired,
                             CompletionToken&& token = default_token{}) const {
    return run<bool>(cas_request(std::move(key), std::move(expected), std::move(desired)),
                     std::forward<CompletionToken>(token));
  }
  bool compare_and_set(std::string key, std::optional<json> expected, json desired) const {
    return call<bool>(cas_request(std::move(key), std::move(expected), std::move(desired)));
  }
  bool compare_and_set(std::string key, std::optional<json> expected, json desired,
                       error_code& ec, diagnostics& diag) const {
    return call<bool>(cas_request(std::move(key), std::move(expected), std::move(desired)), ec, diag);
  }

  /// Appends to the array at `key` (an absent key becomes [value]); returns the new size.
  template <class CompletionToken = default_token>
  auto async_append(std::string key, json value, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(detail::with_value(req(op::append, std::move(key)), std::move(value)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t append(std::string key, json value) const {
    return call<std::uint64_t>(detail::with_value(req(op::append, std::move(key)), std::move(value)));
  }
  std::uint64_t append(std::string key, json value, error_code& ec, diagnostics& diag) const {
    return call<std::uint64_t>(detail::with_value(req(op::append, std::move(key)), std::move(value)), ec, diag);
  }

  /// Runs a transaction (see zproc/transaction.hpp) as one revision: all of it or none.
  template <class CompletionToken = default_token>
  auto async_transaction(const txn& t, CompletionToken&& token = default_token{}) const {
    return run<transaction_result>(txn_request(t), std::forward<CompletionToken>(token));
  }
  transaction_result transaction(const txn& t) const {
    return call<transaction_result>(txn_request(t));
  }
  transaction_result transaction(const txn& t, error_code& ec, diagnostics& diag) const {
    return call<transaction_result>(txn_request(t), ec, diag);
  }

  /// Read-modify-write of the namespace as one write: `fn` gets a snapshot (`json&`, an object)
  /// to change, and may return a value (returned here). The changes are committed as one
  /// revision only if nothing `fn` read was written meanwhile; otherwise `fn` runs again on fresh
  /// data. With `keys`, `fn` sees (and depends on) only those keys; without, the whole namespace.
  /// After a few conflicts it takes the namespace's lock, which the server gives back when the
  /// holder commits, dies, or exceeds a 5 s lease: it makes progress under any contention.
  /// After a call that needed the lock, the next 8 calls on this client and namespace take it
  /// at once (under sustained contention, optimistic attempts would only fail).
  /// An exception from `fn` propagates and nothing is written; a process killed inside `fn`
  /// writes nothing either. Blocking; `fn` must not call this client itself.
  template <class F>
  auto atomic(F&& fn, std::vector<std::string> keys = {}, atomic_options options = {}) const {
    using R = std::invoke_result_t<F&, json&>;
    if constexpr (std::is_void_v<R>) {
      detail::run_atomic(impl_, ns_, handle_, std::move(keys), options,
                         [&fn](json& snapshot) { fn(snapshot); });
    } else {
      std::optional<R> result;
      detail::run_atomic(impl_, ns_, handle_, std::move(keys), options,
                         [&](json& snapshot) { result.emplace(fn(snapshot)); });
      return std::move(*result);
    }
  }
  /// atomic() throwing nothing of its own: a failure (a refused commit, a lost connection, a
  /// timeout) sets `ec` and `diag` (the server's message) and returns a default value (R must
  /// be default-constructible); success clears both. An exception from `fn` still propagates:
  /// it is yours. `st.atomic(fn, {}, {}, ec, diag)`.
  template <class F>
  auto atomic(F&& fn, std::vector<std::string> keys, atomic_options options, error_code& ec,
              diagnostics& diag) const {
    using R = std::invoke_result_t<F&, json&>;
    if constexpr (std::is_void_v<R>) {
      detail::run_atomic(impl_, ns_, handle_, std::move(keys), options,
                         [&fn](json& snapshot) { fn(snapshot); }, ec, diag);
    } else {
      std::optional<R> result;
      detail::run_atomic(impl_, ns_, handle_, std::move(keys), options,
                         [&](json& snapshot) { result.emplace(fn(snapshot)); }, ec, diag);
      return ec || !result ? R{} : std::move(*result);
    }
  }

  /// The asynchronous atomic(): same semantics, same algorithm, on an async client; the body
  /// runs on the client's executor. Completion `void(error_code, R)` (`void(error_code)` for
  /// R = void; R must be default-constructible). A refused commit completes with the server's
  /// code and message; a body that throws with client_errc::body_threw and its exception in
  /// the diagnostics, which is what `co_await st.async_atomic(fn)` (the default token)
  /// rethrows; in both cases the lock, if taken, was given back first. Terminal and partial
  /// cancellation stop a lock or read in flight (operation_aborted, the lock given back); a
  /// commit in flight runs to its end. `fn` may be move-only.
  template <class F, class CompletionToken = default_token>
  auto async_atomic(F fn, std::vector<std::string> keys = {}, atomic_options options = {},
                    CompletionToken&& token = default_token{}) const {
    using R = std::invoke_result_t<F&, json&>;
    // (The handle's own id goes along: a copy of this state would be another writer.)
    return detail::initiate<typename detail::value_signature<R>::type>(
        [](auto h, const std::shared_ptr<detail::client_impl>& impl, const std::string& ns,
           std::uint64_t handle, const executor_type& own, F body, std::vector<std::string> ks,
           atomic_options o) {
          namespace asio = boost::asio;
          auto d = detail::diagnostics_of(h);
          auto f = std::make_shared<F>(std::move(body));
          auto ex = asio::get_associated_executor(h, own);
          auto slot = asio::get_associated_cancellation_slot(h);
          if constexpr (std::is_void_v<R>) {
            detail::start_atomic(
                impl, ns, handle, std::move(ks), o, [f](json& snapshot) { (*f)(snapshot); },
                asio::bind_cancellation_slot(
                    slot, asio::bind_executor(ex, [h = std::move(h)](error_code ec) mutable {
                      std::move(h)(ec);
                    })),
                d);
          } else {
            auto result = std::make_shared<std::optional<R>>();
            detail::start_atomic(
                impl, ns, handle, std::move(ks), o,
                [f, result](json& snapshot) { result->emplace((*f)(snapshot)); },
                asio::bind_cancellation_slot(
                    slot, asio::bind_executor(ex, [h = std::move(h), result](
                                                      error_code ec) mutable {
                      std::move(h)(ec, ec || !*result ? R{} : std::move(**result));
                    })),
                d);
          }
        },
        token, impl_, ns_, handle_, get_executor(), std::move(fn), std::move(keys), options);
  }


  // --- time machine ----------------------------------------------------------------------

  /// Update records with from <= revision <= to, oldest first, at most `max` (<= 10,000) of
  /// them, and fewer if they would exceed about half a frame (a page is never too large to
  /// send, and holds at least one record): continue from the last one's revision + 1 until a
  /// page is empty. from = 0: the oldest kept. Fails with server_errc::compacted if `from` is
  /// older than the history kept.
  /// Completion: void(error_code, std::vector<zproc::update>)
  template <class CompletionToken = default_token>
  auto async_history(std::uint64_t from, std::optional<std::uint64_t> to = {},
                     std::size_t max = 10'000, CompletionToken&& token = default_token{}) const {
    return run<std::vector<zproc::update>>(history_request(from, to, max),
                                    std::forward<CompletionToken>(token));
  }
  std::vector<zproc::update> history(std::uint64_t from = 0, std::optional<std::uint64_t> to = {},
                              std::size_t max = 10'000) const {
    return call<std::vector<zproc::update>>(history_request(from, to, max));
  }
  std::vector<zproc::update> history(std::uint64_t from, std::optional<std::uint64_t> to,
                                     std::size_t max, error_code& ec, diagnostics& diag) const {
    return call<std::vector<zproc::update>>(history_request(from, to, max), ec, diag);
  }

  /// The namespace as it was right after revision `rev` (0: empty, before the first write).
  /// server_errc::compacted if the history no longer reaches back there.
  template <class CompletionToken = default_token>
  auto async_at(std::uint64_t rev, CompletionToken&& token = default_token{}) const {
    return run<json>(at_request(rev), std::forward<CompletionToken>(token));
  }
  json at(std::uint64_t rev) const { return call<json>(at_request(rev)); }
  json at(std::uint64_t rev, error_code& ec, diagnostics& diag) const {
    return call<json>(at_request(rev), ec, diag);
  }

  // --- watchers ----------------------------------------------------------------------------
  // A watcher starts watching when it is created (or at options.start): an update made after
  // that is never missed, even before the first next(). By default it does not report the
  // writes of this state handle (options.include_own).

  /// Snapshots after each update that touches one of `keys` (none: any key; with
  /// options.exclude: any key but these). ZProc's when_change.
  watcher when_change(std::vector<std::string> keys = {}, watch_options options = {}) const;
  /// Update records instead of snapshots. ZProc's when_change_raw.
  raw_watcher when_change_raw(std::vector<std::string> keys = {},
                              watch_options options = {}) const;
  /// Snapshots after each update after which `pred(snapshot)` holds (tested in this process).
  watcher when(std::function<bool(const json&)> pred, watch_options options = {}) const;
  /// Snapshots after each update of `key` after which the condition holds (tested on the
  /// server: updates of other keys cost this watcher nothing).
  watcher when_equal(std::string key, json value, watch_options options = {}) const;
  watcher when_not_equal(std::string key, json value, watch_options options = {}) const;
  watcher when_truthy(std::string key, watch_options options = {}) const;
  watcher when_falsy(std::string key, watch_options options = {}) const;
  /// The key is absent or null (Python's `state.get(key) is None`).
  watcher when_none(std::string key, watch_options options = {}) const;
  watcher when_not_none(std::string key, watch_options options = {}) const;
  /// The key exists.
  watcher when_available(std::string key, watch_options options = {}) const;

  /// One-shot forms: the snapshot once the condition holds. The predicate forms return at once
  /// if it holds already; get_when_change waits for the next change.
  json get_when_change(std::vector<std::string> keys = {}, watch_options options = {}) const;
  json get_when(std::function<bool(const json&)> pred, watch_options options = {}) const;
  json get_when_equal(std::string key, json value, watch_options options = {}) const;
  json get_when_not_equal(std::string key, json value, watch_options options = {}) const;
  json get_when_truthy(std::string key, watch_options options = {}) const;
  json get_when_falsy(std::string key, watch_options options = {}) const;
  json get_when_none(std::string key, watch_options options = {}) const;
  json get_when_not_none(std::string key, watch_options options = {}) const;
  json get_when_available(std::string key, watch_options options = {}) const;
  /// The same, throwing nothing: a failure (a watch that could not start, a timeout, a lost
  /// connection) sets `ec` and `diag` (the server's message) and returns null; success clears
  /// both.
  json get_when_change(std::vector<std::string> keys, watch_options options, error_code& ec,
                       diagnostics& diag) const;
  json get_when(std::function<bool(const json&)> pred, watch_options options, error_code& ec,
                diagnostics& diag) const;
  json get_when_equal(std::string key, json value, watch_options options, error_code& ec,
                      diagnostics& diag) const;
  json get_when_not_equal(std::string key, json value, watch_options options, error_code& ec,
                          diagnostics& diag) const;
  json get_when_truthy(std::string key, watch_options options, error_code& ec,
                       diagnostics& diag) const;
  json get_when_falsy(std::string key, watch_options options, error_code& ec,
                      diagnostics& diag) const;
  json get_when_none(std::string key, watch_options options, error_code& ec,
                     diagnostics& diag) const;
  json get_when_not_none(std::string key, watch_options options, error_code& ec,
                         diagnostics& diag) const;
  json get_when_available(std::string key, watch_options options, error_code& ec,
                          diagnostics& diag) const;

  /// Async one-shot: completes with the snapshot (void(error_code, std::optional<json>)).
  /// `make` is one of the watcher factories above, e.g.
  ///   co_await st.async_get_when([&] { return st.when_equal("ready", true); });
  /// (The factory is called now, so the watch starts before this returns.)
  template <class Factory, class CompletionToken = default_token>
  auto async_get_when(Factory&& make, CompletionToken&& token = default_token{}) const {
    auto core = std::forward<Factory>(make)().release();
    return detail::initiate<void(error_code, std::optional<json>)>(
        [](auto h, const std::shared_ptr<detail::watch_core>& c) {
          auto diagnostics = detail::diagnostics_of(h);
          detail::start_next_once(c,
                                  boost::asio::any_completion_handler<void(
                                      error_code, std::optional<json>)>(std::move(h)),
                                  std::move(diagnostics));
        },
        token, std::move(core));
  }

  /// Named async one-shots, e.g. `co_await st.async_get_when_equal("ready", true)`.
  /// Completion: void(error_code, std::optional<json>) (the snapshot).
  template <class CompletionToken = default_token>
  auto async_get_when_change(std::vector<std::string> keys = {}, watch_options options = {},
                             CompletionToken&& token = default_token{}) const {
    return async_get_when([&] { return when_change(std::move(keys), once(options)); },
                          std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = default_token>
  auto async_get_when_equal(std::string key, json value, watch_options options = {},
                            CompletionToken&& token = default_token{}) const {
    return async_one_shot(detail::predicate::equal, std::move(key), std::move(value), options,
                          std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = default_token>
  auto async_get_when_not_equal(std::string key, json value, watch_options options = {},
                                CompletionToken&& token = default_token{}) const {
    return async_one_shot(detail::predicate::not_equal, std::move(key), std::move(value), options,
                          std::forward<CompletionToken>(token));
  }
#define ZPROC_ASYNC_ONE_SHOT(name, kind)                                                    \
  template <class CompletionToken = default_token>                                          \
  auto name(std::string key, watch_options options = {},                                    \
            CompletionToken&& token = default_token{}) const {                              \
    return async_one_shot(kind, std::move(key), json(json::value_t::discarded), options,    \
                          std::forward<CompletionToken>(token));                            \
  }
  ZPROC_ASYNC_ONE_SHOT(async_get_when_truthy, detail::predicate::truthy)
  ZPROC_ASYNC_ONE_SHOT(async_get_when_falsy, detail::predicate::falsy)
  ZPROC_ASYNC_ONE_SHOT(async_get_when_none, detail::predicate::none)
  ZPROC_ASYNC_ONE_SHOT(async_get_when_not_none, detail::predicate::not_none)
  ZPROC_ASYNC_ONE_SHOT(async_get_when_available, detail::predicate::available)
#undef ZPROC_ASYNC_ONE_SHOT

 private:
  state(std::shared_ptr<detail::client_impl> impl, std::string ns);

  using op = detail::op;
  detail::request req(op o) const;
  detail::request req(op o, std::string key) const;
  detail::request history_request(std::uint64_t from, std::optional<std::uint64_t> to,
                                  std::size_t max) const;
  detail::request cas_request(std::string key, std::optional<json> expected, json desired) const;
  detail::request txn_request(const txn& t) const;
  detail::request at_request(std::uint64_t rev) const;
  detail::request page_req(op o, page_request page) const;
  watcher make_watcher(json spec, watch_options options, bool now,
                       std::function<bool(const json&)> filter = {}) const;
  watcher predicate_watcher(detail::predicate kind, std::string key, json value,
                            watch_options options, bool now) const;
  static watch_options once(watch_options o) {
    o.count = 1;
    return o;
  }
  template <class CompletionToken>
  auto async_one_shot(detail::predicate kind, std::string key, json value, watch_options options,
                      CompletionToken&& token) const {
    return async_get_when(
        [&] {
          return predicate_watcher(kind, std::move(key), std::move(value), once(options), true);
        },
        std::forward<CompletionToken>(token));
  }

  template <class T, class CompletionToken>
  auto run(detail::request request, CompletionToken&& token) const {
    return detail::async_request<T>(impl_, std::move(request),
                                    std::forward<CompletionToken>(token));
  }
  template <class T>
  T call(detail::request request) const {
    return detail::call<T>(impl_, std::move(request));
  }
  template <class T>
  T call(detail::request request, error_code& ec, diagnostics& diag) const {
    return detail::call<T>(impl_, std::move(request), ec, diag);
  }

  std::shared_ptr<detail::client_impl> impl_;
  std::string ns_;
  std::uint64_t handle_ = 0;  // identifies this handle object's writes (a copy gets its own)
};

}  // namespace zproc
