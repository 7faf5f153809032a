// The messages of the zproc wire protocol (see docs/protocol.md): field names, the hello
// handshake, and how errors travel. Plain functions on nlohmann::json, no I/O.
#pragma once

#include "protocol/frame.hpp"
#include "protocol/ops.hpp"
#include "protocol/reply_bytes.hpp"

#include <zproc/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zproc::protocol {

using nlohmann::json;

/// Bumped on every change of the messages below. Version 3 added the streaming watch ("stream"
/// and the `more` op); a version 3 server still speaks version 2 to a client that asks for it
/// (answering in that version; such a client never sends what version 3 added).
inline constexpr std::int64_t version = 3;
/// The oldest version a server speaks.
inline constexpr std::int64_t oldest_version = 2;
inline constexpr std::string_view magic = "zproc";

// Field names: protocol/ops.hpp.

/// Bounds of a page (keys, items, history): a page holds at most `max_page_limit` keys and stops
/// once its encoded entries exceed the request's byte budget (at most `max_page_bytes`), always
/// holding at least one entry.
inline constexpr std::uint64_t default_page_limit = 1000;
inline constexpr std::uint64_t max_page_limit = 100'000;
inline constexpr std::uint64_t max_page_bytes = 4u * 1024u * 1024u;

/// The client's first message; with `client_nonce` (auth::make_nonce()) when the client has a
/// token: it asks the server to authenticate (protocol/auth.hpp).
json make_hello(std::size_t max_frame_size, std::string_view client_nonce = {});

/// A hello as the server reads it.
struct hello_request {
  std::int64_t version = protocol::version;  ///< the client's, oldest_version..version
  std::size_t max_frame_size = default_max_frame_size;
  std::string client_nonce;  ///< empty: the client has no token
};

/// The server's challenge to a client that offered a nonce: prove you know the token.
/// `speaks`: the version the server speaks to this client (the hello's).
json make_challenge(std::string_view server_nonce, std::int64_t speaks = version);
/// The client's answer to a challenge.
json make_proof(std::string_view client_proof);
/// Reads the client's answer (server side): its proof, or nullopt with an error in ec/why.
std::optional<std::string> parse_proof(const json& msg, error_code& ec, std::string& why);

/// What a server answers to a good hello (or, with `challenge` set, a challenge instead).
struct hello_reply {
  std::int64_t server_pid = 0;
  std::uint64_t client_id = 0;
  std::size_t max_frame_size = 0;
  /// Names the server and its data: the same across restarts with the same data directory,
  /// new for each start of a server in memory. Empty from a server that sends none.
  std::string server_id;
  /// The server's proof that it knows the client's token (auth::server_proof); empty when the
  /// client authenticated with none.
  std::string server_proof;
  /// The connection's role (access_role::to_string()); empty from a server that sends none.
  std::string role;
  /// Not a reply but a challenge: the server's nonce. The client answers with make_proof().
  std::string challenge;
  std::int64_t version = protocol::version;  ///< the version the server speaks to this client
};
json make_hello_reply(const hello_reply& r);

/// Validates a hello (server side). Returns what it asks for, or an error with a message in
/// `why`.
std::optional<hello_request> check_hello(const json& msg, error_code& ec, std::string& why);

/// Reads a hello reply (client side): an error reply becomes `ec` + `why`.
std::optional<hello_reply> parse_hello_reply(const json& msg, error_code& ec, std::string& why);

/// {c, n, m}: an error as it travels. Only zproc's categories cross the wire by name; any other
/// code travels as server_errc::internal with its message.
json encode_error(error_code ec, std::string_view message);
/// The inverse; an unknown category becomes client_errc::protocol_error.
error_code decode_error(const json& e, std::string& message);

/// A reply as the client reads it, without a json tree for its result.
struct reply_view {
  std::uint64_t id = 0;  ///< 0 (or not a number): a message about the connection itself
  std::optional<json> error;  ///< {c, n, m}: decode_error()
  /// The result's MessagePack (one checked value, as decode_msgpack() accepts it, unless
  /// `result_checked` is false); empty if the reply has none. A view into the payload.
  std::string_view result;
  /// False: `result` is the rest of the payload, not checked yet (parse_reply's
  /// `check_last_result`): check_result(), or a reader that checks all it reads, must.
  bool result_checked = true;
};
/// Reads a message from the server (a frame's payload). False: it is not one MessagePack map.
/// Without `check_last_result`, a result that is the map's last field (as a watch reply's is) is
/// the rest of the payload, unchecked: the caller checks it if its reader does not (a watch
/// reply's decoder reads it all, checking as it goes: the reply is then read once, not twice).
bool parse_reply(std::string_view payload, reply_view& out, bool check_last_result = true);
/// Whether `result` is one whole MessagePack value that decode_msgpack() accepts, nested as a
/// reply's field (what parse_reply() checks of a result).
bool check_result(std::string_view result) noexcept;

/// A reply to request `id`.
json make_reply(std::uint64_t id, json result);
json make_reply(std::uint64_t id, json result, std::uint64_t revision);
json make_error_reply(std::uint64_t id, error_code ec, std::string_view message);
/// make_reply()'s message as MessagePack, written without building it: the same bytes that
/// encoding make_reply(id, result[, revision]) gives. For the server's hot path (a store op's
/// reply costs no json object, no map nodes, no second pass; a scalar result, or a text of up
/// to 19 bytes, is held inline: no allocation).
reply_bytes encode_reply(std::uint64_t id, const json& result,
                         std::optional<std::uint64_t> revision = std::nullopt);

/// The MessagePack of {"i": id, "r": {"cursor": cursor, "updates": [<update>]}} up to the
/// update: the update's bytes (already MessagePack, shared by every watcher) follow it in the
/// same frame, without a copy. Held inline (no allocation).
reply_bytes watch_reply_head(std::uint64_t id, std::uint64_t cursor);

}  // namespace zproc::protocol
