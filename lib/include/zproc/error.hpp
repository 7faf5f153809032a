// zproc/error.hpp - error codes of zproc, and the exception the blocking API throws.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <string_view>
#include <type_traits>

namespace zproc {

using boost::system::error_code;

/// Errors detected by the client side of a connection (this process).
enum class client_errc {
  /// The address is not `ipc:///path` or `tcp://host:port`.
  bad_address = 1,
  /// Could not connect: no server listens at that address. Start one (`zproc server --listen
  /// ADDR`) or check ZPROC_ADDRESS.
  server_unreachable,
  /// The server speaks another protocol version; use the same zproc release on both ends.
  version_mismatch,
  /// The operation needs a connected client; call connect() first.
  not_connected,
  /// The connection broke (the server stopped or the network failed) before the reply came,
  /// and it is over: the client was closed, reconnecting is disabled
  /// (client_options::reconnect_timeout zero), or no server answered within that deadline.
  connection_closed,
  /// The server sent bytes that are not a valid zproc frame.
  protocol_error,
  /// A message is larger than the maximum frame size (client_options::max_frame_size).
  frame_too_large,
  /// The operation did not complete before its deadline (client_options::request_timeout).
  timeout,
  /// connect() was called on a client that is already connected or connecting.
  already_connected,
  /// An async operation on a blocking-mode client (`client()`), whose I/O only runs inside
  /// blocking calls: construct the client with an executor to use async operations. Or a
  /// blocking call on a thread that runs the async client's executor (it would wait for a reply
  /// only that thread can read): co_await the async_ form, or call it from another thread.
  wrong_mode,
  /// The connection to the server was lost while this request waited for its reply, and the
  /// client has reconnected since: the request may or may not have been applied. Only writes
  /// get it (reads are sent again); read the state to learn what happened. (If the client gives
  /// up instead, the request fails with connection_closed.)
  connection_lost,
  /// Code of the caller's that the library ran threw. The body of state::async_atomic():
  /// nothing was committed and the namespace's lock, if taken, was given back; the exception is
  /// in the diagnostics (diagnostics::exception()) and is what `co_await st.async_atomic(fn)`
  /// rethrows. The predicate of a state::when() / get_when() watcher: the watcher fails (after
  /// the updates it let through), its message says what was thrown.
  body_threw,
  /// The server could not prove that it knows the client's token (it has none, or another):
  /// it is not the server the token was made for; or (tls://) its certificate was not
  /// accepted (another CA, another name). Nothing was sent to it but the hello.
  untrusted_server,
};

/// Errors reported by the server; they travel over the wire as {category, code, message}.
enum class server_errc {
  /// The key is not in the namespace.
  key_not_found = 1,
  /// A value has the wrong JSON type for the operation (e.g. update() with a non-object).
  wrong_type,
  /// The request is malformed: a field is missing or has the wrong type.
  bad_request,
  /// The request names an operation this server does not know.
  unknown_op,
  /// A frame exceeded the server's maximum frame size; the connection is closed.
  frame_too_large,
  /// A frame's payload is not valid MessagePack.
  malformed_frame,
  /// The first message was not a valid hello; the connection is closed.
  handshake_required,
  /// The client's protocol version is not supported; the connection is closed.
  version_mismatch,
  /// popitem() on an empty namespace.
  empty_namespace,
  /// The reply would exceed the client's maximum frame size: read a big namespace page by
  /// page (state::keys_page(), items_page(), for_each_key(), for_each_item()).
  reply_too_large,
  /// The server is shutting down.
  shutting_down,
  /// An unexpected failure inside the server (a bug: please report it).
  internal,
  /// The revision asked for is older than the retained history; the message names the oldest
  /// revision still available (raise the retention limit, or start from there).
  compacted,
  /// An atomic commit found that what it read had changed (atomic() retries by itself).
  conflict,
  /// A limit of the server was reached (namespaces per server: server_config::max_namespaces);
  /// the message names it. Nothing was changed.
  limit_reached,
  /// The server had no memory for this request; nothing was changed (try again later).
  out_of_memory,
  /// The server did not let this connection in: no token where one is needed, a wrong token,
  /// a replayed hello, or (Unix socket) a user it does not allow. The connection is closed.
  unauthenticated,
  /// The connection's role (the token it authenticated with) does not allow this request, or
  /// it touches what belongs to another connection (a task it did not take, a process record
  /// it did not create). Nothing was changed.
  forbidden,
};

/// Why a spawned process or a swarm task gave no value. The async operations complete with
/// these codes; their diagnostics (zproc::diagnostics::exception(), or what co_await and the
/// blocking calls throw) carry the full exception: remote_error, process_wait_error,
/// task_lost_error.
enum class process_errc {
  /// The target threw: remote_error, with the exception's type, message and stacktrace.
  remote_exception = 1,
  /// The process ended without a value (non-zero exit, a signal, an exit before the target
  /// returned, stop()): process_wait_error.
  exited,
  /// Every worker that took the task died or disconnected: task_lost_error.
  task_lost,
  /// The type asked for is not what the target returns (std::invalid_argument).
  wrong_result_type,
};

const boost::system::error_category& client_category() noexcept;
const boost::system::error_category& server_category() noexcept;
const boost::system::error_category& process_category() noexcept;

inline error_code make_error_code(client_errc e) noexcept {
  return {static_cast<int>(e), client_category()};
}
inline error_code make_error_code(server_errc e) noexcept {
  return {static_cast<int>(e), server_category()};
}
inline error_code make_error_code(process_errc e) noexcept {
  return {static_cast<int>(e), process_category()};
}

/// What the blocking API throws: a system_error whose code is one of ours (or an OS/Asio code),
/// plus the diagnostics text the server sent (e.g. "key 'cookies' not found in namespace 'x'").
class error : public boost::system::system_error {
 public:
  error(error_code ec, std::string diagnostics)
      : boost::system::system_error(ec, diagnostics), diagnostics_(std::move(diagnostics)) {}
  explicit error(error_code ec) : boost::system::system_error(ec) {}

  /// The server's (or client's) detailed message; may be empty.
  const std::string& diagnostics() const noexcept { return diagnostics_; }

 private:
  std::string diagnostics_;
};

}  // namespace zproc

template <>
struct boost::system::is_error_code_enum<zproc::client_errc> : std::true_type {};
template <>
struct boost::system::is_error_code_enum<zproc::server_errc> : std::true_type {};
template <>
struct boost::system::is_error_code_enum<zproc::process_errc> : std::true_type {};
