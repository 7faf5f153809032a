// Private: the thin template front of every client operation. It hands the completion handler,
// type-erased, to compiled code (lib/src/client), so that users' builds stay fast. Requests are
// opaque (zproc/detail/op.hpp): the builders below are compiled, and the wire format stays in
// lib/src/protocol.
#pragma once

#include <zproc/detail/op.hpp>
#include <zproc/error.hpp>
#include <zproc/json.hpp>
#include <zproc/with_diagnostics.hpp>

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

/// Sends `r`; completes with the reply's result converted to T, on the handler's
/// associated executor; on failure, the message goes to `diagnostics` (if set). Explicitly instantiated for: json, bool, std::uint64_t, std::int64_t,
/// std::vector<std::string>, std::vector<json>, std::vector<std::pair<std::string, json>>,
/// std::pair<std::string, json>, std::vector<update>, transaction_result, key_page, item_page.
template <class T>
void start_request(const std::shared_ptr<client_impl>& c, request r, handler<T> h,
                   diagnostics_ptr diagnostics = nullptr);

/// Blocking: sends `r` and waits (client_options::request_timeout at most). Throws
/// zproc::error carrying the server's diagnostics.
template <class T>
T call(const std::shared_ptr<client_impl>& c, request r);
/// The same, throwing nothing: a failure sets `ec` and `diag` (the server's message) and
/// returns T{}; success clears both.
template <class T>
T call(const std::shared_ptr<client_impl>& c, request r, error_code& ec, diagnostics& diag);

/// `diagnostics`: where a failure's message goes (default: where the token asks for it).
template <class T, class CompletionToken>
auto async_request(const std::shared_ptr<client_impl>& c, request r, CompletionToken&& token,
                   diagnostics_ptr diagnostics_to = nullptr) {
  return detail::initiate<void(error_code, T)>(
      [diagnostics_to](auto h, const std::shared_ptr<client_impl>& impl, request req) {
        auto diagnostics = diagnostics_to ? diagnostics_to : diagnostics_of(h);
        start_request<T>(impl, std::move(req), handler<T>(std::move(h)), std::move(diagnostics));
      },
      token, c, std::move(r));
}

/// Sends `r` and completes with the reply's result and the number of the connection the reply
/// came on (client::connections(): what the server gave on one connection, a lock or an id,
/// means nothing on the next). `only_on` non-zero: sent only on connection number `only_on`,
/// failing with connection_lost, unsent, on any other. Async mode only.
void start_connection_request(
    const std::shared_ptr<client_impl>& c, std::uint64_t only_on, request r,
    boost::asio::any_completion_handler<void(error_code, json, std::uint64_t)> h,
    diagnostics_ptr diagnostics);

/// start_connection_request() for any completion token. (A function of its own: GCC 12
/// destroys a lambda with captures made inside a co_await expression twice.)
template <class CompletionToken>
auto async_connection_request(const std::shared_ptr<client_impl>& c, std::uint64_t only_on,
                              request r, diagnostics_ptr diagnostics, CompletionToken&& token) {
  return detail::initiate<void(error_code, json, std::uint64_t)>(
      [only_on, diagnostics](auto h, const std::shared_ptr<client_impl>& impl, request req) {
        start_connection_request(impl, only_on, std::move(req), std::move(h), diagnostics);
      },
      token, c, std::move(r));
}

/// `o` on the namespace `ns`, written by the state handle `handle` (its writes carry it).
request make_request(op o, const std::string& ns, std::uint64_t handle);
/// ...on one key.
request make_request(op o, const std::string& ns, std::uint64_t handle, std::string key);
/// The op's value (set, append, incr, update, replace, cas: the value to write).
request with_value(request r, json value);
/// The op's default (get, pop, setdefault: returned when the key is absent).
request with_fallback(request r, json fallback);
/// ping: the server's pid.
request ping_request();

}  // namespace zproc::detail
