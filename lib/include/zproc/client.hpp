// zproc/client.hpp - a connection to a zproc server, shared by the state handles made from it.
#pragma once

#include <zproc/detail/request.hpp>
#include <zproc/error.hpp>
#include <zproc/tls.hpp>
#include <zproc/with_diagnostics.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace zproc {

struct client_options {
  /// Largest frame this client sends or accepts (the server's own limit applies too).
  std::size_t max_frame_size = 8u * 1024u * 1024u;
  /// The token to authenticate with (zproc/access.hpp, docs/security.md); the server must
  /// prove it knows it too (else client_errc::untrusted_server). Not set: token_from_env()
  /// (ZPROC_TOKEN, else the file ZPROC_TOKEN_FILE names), read at each connection attempt, so
  /// that a reconnect picks up a rotated token file. Empty: no token.
  std::optional<std::string> token;
  /// TLS of tls:// addresses (zproc/tls.hpp). Not set: tls_options_from_env() (ZPROC_TLS_CA,
  /// ...), read at each connection attempt.
  std::optional<tls_options> tls;
  // Deadlines: zero means "no deadline" for each of them.

  /// Deadline of connect() / async_connect() (socket connect and hello); zero: none.
  std::chrono::milliseconds connect_timeout{10'000};
  /// Deadline of each blocking call; zero: none. Async operations have no implicit deadline:
  /// cancel them (e.g. with a timer and cancellation slot) instead.
  std::chrono::milliseconds request_timeout{30'000};

  // Reconnecting (see "When the server restarts" in docs/guide.md).

  /// More servers to fail over to, tried in turn after the address given to connect() (which
  /// may itself be a comma-separated list, as in `ZPROC_ADDRESS=ipc:///a.sock,tcp://b:7000`).
  std::vector<std::string> addresses;
  /// How long a client that lost its server keeps trying to reconnect (to the same address,
  /// then the next ones) before it gives up; meanwhile new requests wait, queued. After it gave
  /// up, every pending and queued request fails with client_errc::connection_closed, as does
  /// every later one. Zero: never reconnect (a lost connection is over).
  std::chrono::milliseconds reconnect_timeout{30'000};
  /// The pause before the second round of attempts over the addresses (the first round starts
  /// at once); it doubles after each round, up to `reconnect_max_delay`.
  std::chrono::milliseconds reconnect_initial_delay{50};
  std::chrono::milliseconds reconnect_max_delay{2'000};
};

/// One connection to a server. Many requests may be in flight on it at once (pipelining):
/// each carries an id and replies may come in any order. If the connection breaks, the client
/// reconnects (client_options::reconnect_timeout): reads and watches waiting for their reply are
/// sent again on the new connection, writes fail with client_errc::connection_lost once it is up
/// (they may or may not have been applied), and requests made meanwhile wait. If it gives up (or reconnecting
/// is disabled), every pending request fails with client_errc::connection_closed; none waits
/// forever.
///
/// Two modes:
///  - `client(ex)`: an Asio I/O object; all its I/O runs on (a strand of) `ex`. Use the
///    `async_*` operations; blocking calls are allowed only from threads that do not run `ex`.
///  - `client()`: blocking mode. The client owns a private io_context that the calling thread
///    runs inside each blocking call (no helper thread, no thread hop). Blocking calls from
///    several threads are serialized.
class client {
 public:
  using executor_type = boost::asio::any_io_executor;

  explicit client(client_options options = {});
  explicit client(executor_type ex, client_options options = {});
  /// Async mode on the executor of `context` (an io_context, a thread_pool).
  template <class ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit client(ExecutionContext& context, client_options options = {})
      : client(executor_type(context.get_executor()), options) {}
  ~client();  ///< closes the connection once no state handle uses it any more
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  executor_type get_executor() const noexcept;

  /// Connects to `address` (ipc://... or tcp://...) and performs the handshake. A
  /// comma-separated list of addresses is tried in turn (the first that answers is used), and,
  /// with client_options::addresses, is the list a lost connection fails over to.
  /// Completion: void(error_code). Errors: client_errc::bad_address, server_unreachable,
  /// version_mismatch, timeout, already_connected. Supports terminal cancellation.
  template <class CompletionToken = default_token>
  auto async_connect(std::string address, CompletionToken&& token = default_token{}) {
    return detail::initiate<void(error_code)>(
        [](auto h, const std::shared_ptr<detail::client_impl>& impl, std::string addr) {
          auto diagnostics = detail::diagnostics_of(h);
          start_connect(impl, std::move(addr),
                        boost::asio::any_completion_handler<void(error_code)>(std::move(h)),
                        std::move(diagnostics));
        },
        token, impl_, std::move(address));
  }
  /// Blocking connect; throws zproc::error.
  void connect(const std::string& address);
  /// Blocking connect that throws nothing: a failure sets `ec` and `diag.message()`.
  void connect(const std::string& address, error_code& ec, diagnostics& diag);

  /// Round trip to the server; completes with the server's pid.
  template <class CompletionToken = default_token>
  auto async_ping(CompletionToken&& token = default_token{}) {
    return detail::async_request<std::int64_t>(impl_, detail::ping_request(),
                                               std::forward<CompletionToken>(token));
  }
  std::int64_t ping();
  std::int64_t ping(error_code& ec, diagnostics& diag);

  /// Closes the connection: pending requests fail with client_errc::connection_closed.
  void close();

  /// After connect: the address connected to now (after a failover: the new one), the server's
  /// pid, and the id the server gave this connection (what identifies its writes); the last
  /// two change when the client reconnects.
  std::string address() const;
  std::int64_t server_pid() const;
  std::uint64_t id() const;

  /// Internal: the shared connection (used by zproc::state).
  const std::shared_ptr<detail::client_impl>& impl() const noexcept { return impl_; }

 private:
  static void start_connect(const std::shared_ptr<detail::client_impl>& c, std::string address,
                            boost::asio::any_completion_handler<void(error_code)> h,
                            detail::diagnostics_ptr diagnostics);

  std::shared_ptr<detail::client_impl> impl_;
};

}  // namespace zproc
