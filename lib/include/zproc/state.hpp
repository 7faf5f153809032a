// zproc/state.hpp - a handle on one namespace of the server's state: a dict of JSON values.
#pragma once

#include <zproc/client.hpp>
#include <zproc/detail/request.hpp>
#include <zproc/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zproc {

/// The dict API of ZProc, as one atomic server-side step per call. Every operation comes twice:
/// `async_xxx(..., token)` (default token: `co_await st.async_get("k")`) and a blocking twin
/// `xxx(...)` that throws zproc::error with the server's message.
///
/// Writes complete with the namespace's revision after the write (it grows by one per write).
/// Async operations support terminal and partial cancellation: the handler completes at once
/// with asio::error::operation_aborted and the connection stays usable; a write that was
/// already sent may still take effect on the server.
///
/// A state is a cheap handle (it shares its client's connection); copies share it too.
class state {
 public:
  using executor_type = client::executor_type;

  /// A handle on namespace `ns` through `c`'s connection. The connection stays open as long as a
  /// client or a state using it exists.
  explicit state(const client& c, std::string ns = "default")
      : impl_(c.impl()), ns_(std::move(ns)) {}

  /// The same connection, another namespace.
  state fork(std::string ns) const { return state(impl_, std::move(ns)); }
  const std::string& name() const noexcept { return ns_; }
  executor_type get_executor() const noexcept;

  // --- reads --------------------------------------------------------------------------------

  /// The value of `key`; server_errc::key_not_found if absent. Completion: void(error_code, json)
  template <class CompletionToken = default_token>
  auto async_get(std::string key, CompletionToken&& token = default_token{}) const {
    return run<json>(req("get", std::move(key)), std::forward<CompletionToken>(token));
  }
  json get(std::string key) const { return call<json>(req("get", std::move(key))); }

  /// The value of `key`, or `fallback` if absent.
  template <class CompletionToken = default_token>
  auto async_get(std::string key, json fallback, CompletionToken&& token = default_token{}) const {
    return run<json>(with_fallback(req("get", std::move(key)), std::move(fallback)),
                     std::forward<CompletionToken>(token));
  }
  json get(std::string key, json fallback) const {
    return call<json>(with_fallback(req("get", std::move(key)), std::move(fallback)));
  }

  /// Whether `key` is present. Completion: void(error_code, bool)
  template <class CompletionToken = default_token>
  auto async_contains(std::string key, CompletionToken&& token = default_token{}) const {
    return run<bool>(req("contains", std::move(key)), std::forward<CompletionToken>(token));
  }
  bool contains(std::string key) const { return call<bool>(req("contains", std::move(key))); }

  /// Number of keys. Completion: void(error_code, std::uint64_t)
  template <class CompletionToken = default_token>
  auto async_size(CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req("size"), std::forward<CompletionToken>(token));
  }
  std::uint64_t size() const { return call<std::uint64_t>(req("size")); }

  /// Keys in order. Completion: void(error_code, std::vector<std::string>)
  template <class CompletionToken = default_token>
  auto async_keys(CompletionToken&& token = default_token{}) const {
    return run<std::vector<std::string>>(req("keys"), std::forward<CompletionToken>(token));
  }
  std::vector<std::string> keys() const { return call<std::vector<std::string>>(req("keys")); }

  /// Values in key order. Completion: void(error_code, std::vector<json>)
  template <class CompletionToken = default_token>
  auto async_values(CompletionToken&& token = default_token{}) const {
    return run<std::vector<json>>(req("values"), std::forward<CompletionToken>(token));
  }
  std::vector<json> values() const { return call<std::vector<json>>(req("values")); }

  using item = std::pair<std::string, json>;

  /// (key, value) pairs in key order. Completion: void(error_code, std::vector<item>)
  template <class CompletionToken = default_token>
  auto async_items(CompletionToken&& token = default_token{}) const {
    return run<std::vector<item>>(req("items"), std::forward<CompletionToken>(token));
  }
  std::vector<item> items() const { return call<std::vector<item>>(req("items")); }

  /// The whole namespace as one JSON object (a snapshot). Completion: void(error_code, json)
  template <class CompletionToken = default_token>
  auto async_copy(CompletionToken&& token = default_token{}) const {
    return run<json>(req("copy"), std::forward<CompletionToken>(token));
  }
  json copy() const { return call<json>(req("copy")); }

  /// The namespace's current revision (0 before the first write).
  template <class CompletionToken = default_token>
  auto async_revision(CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req("revision"), std::forward<CompletionToken>(token));
  }
  std::uint64_t revision() const { return call<std::uint64_t>(req("revision")); }

  // --- writes: each completes with the revision after the write -----------------------------

  /// state[key] = value. Completion: void(error_code, std::uint64_t revision)
  template <class CompletionToken = default_token>
  auto async_set(std::string key, json value, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(with_value(req("set", std::move(key)), std::move(value)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t set(std::string key, json value) const {
    return call<std::uint64_t>(with_value(req("set", std::move(key)), std::move(value)));
  }

  /// del state[key]; server_errc::key_not_found if absent. Completion: (error_code, revision)
  template <class CompletionToken = default_token>
  auto async_erase(std::string key, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req("del", std::move(key)), std::forward<CompletionToken>(token));
  }
  std::uint64_t erase(std::string key) const {
    return call<std::uint64_t>(req("del", std::move(key)));
  }

  /// Sets every key of `object` (a JSON object; else server_errc::wrong_type), as one write.
  template <class CompletionToken = default_token>
  auto async_update(json object, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(with_value(req("update"), std::move(object)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t update(json object) const {
    return call<std::uint64_t>(with_value(req("update"), std::move(object)));
  }

  /// Replaces the whole namespace with `object` (ZProc's `state.set(value)`), as one write.
  template <class CompletionToken = default_token>
  auto async_replace(json object, CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(with_value(req("replace"), std::move(object)),
                              std::forward<CompletionToken>(token));
  }
  std::uint64_t replace(json object) const {
    return call<std::uint64_t>(with_value(req("replace"), std::move(object)));
  }

  /// Removes every key, as one write.
  template <class CompletionToken = default_token>
  auto async_clear(CompletionToken&& token = default_token{}) const {
    return run<std::uint64_t>(req("clear"), std::forward<CompletionToken>(token));
  }
  std::uint64_t clear() const { return call<std::uint64_t>(req("clear")); }

  /// Removes `key` and returns its value; key_not_found if absent. Completion: (ec, json)
  template <class CompletionToken = default_token>
  auto async_pop(std::string key, CompletionToken&& token = default_token{}) const {
    return run<json>(req("pop", std::move(key)), std::forward<CompletionToken>(token));
  }
  json pop(std::string key) const { return call<json>(req("pop", std::move(key))); }

  /// Removes `key` and returns its value, or returns `fallback` (no write) if absent.
  template <class CompletionToken = default_token>
  auto async_pop(std::string key, json fallback, CompletionToken&& token = default_token{}) const {
    return run<json>(with_fallback(req("pop", std::move(key)), std::move(fallback)),
                     std::forward<CompletionToken>(token));
  }
  json pop(std::string key, json fallback) const {
    return call<json>(with_fallback(req("pop", std::move(key)), std::move(fallback)));
  }

  /// Removes and returns the last (key, value) in key order; server_errc::empty_namespace if
  /// empty. Completion: void(error_code, item)
  template <class CompletionToken = default_token>
  auto async_popitem(CompletionToken&& token = default_token{}) const {
    return run<item>(req("popitem"), std::forward<CompletionToken>(token));
  }
  item popitem() const { return call<item>(req("popitem")); }

  /// The value of `key`; if absent, sets it to `fallback` (one write) and returns that.
  template <class CompletionToken = default_token>
  auto async_setdefault(std::string key, json fallback,
                        CompletionToken&& token = default_token{}) const {
    return run<json>(with_fallback(req("setdefault", std::move(key)), std::move(fallback)),
                     std::forward<CompletionToken>(token));
  }
  json setdefault(std::string key, json fallback) const {
    return call<json>(with_fallback(req("setdefault", std::move(key)), std::move(fallback)));
  }

 private:
  state(std::shared_ptr<detail::client_impl> impl, std::string ns)
      : impl_(std::move(impl)), ns_(std::move(ns)) {}

  json req(const char* op) const { return detail::make_request(op, ns_); }
  json req(const char* op, std::string key) const {
    return detail::make_request(op, ns_, std::move(key));
  }
  static json with_value(json r, json value);
  static json with_fallback(json r, json fallback);

  template <class T, class CompletionToken>
  auto run(json request, CompletionToken&& token) const {
    return detail::async_request<T>(impl_, std::move(request),
                                    std::forward<CompletionToken>(token));
  }
  template <class T>
  T call(json request) const {
    return detail::call<T>(impl_, std::move(request));
  }

  std::shared_ptr<detail::client_impl> impl_;
  std::string ns_;
};

}  // namespace zproc
