#include "protocol/message.hpp"

#include "protocol/msgpack.hpp"

#include <array>
#include <cstring>

namespace zproc::protocol {

namespace {
constexpr std::string_view server_category_name = "zproc.server";
std::optional<hello_reply> parse_hello_reply_unchecked(const json& msg, error_code& ec,
                                                       std::string& why);
error_code decode_error_unchecked(const json& e, std::string& message);
constexpr std::string_view client_category_name = "zproc.client";
}  // namespace

json make_hello(std::size_t max_frame_size, std::string_view client_nonce) {
  json h{{field::hello, magic}, {field::version, version}, {field::max_frame, max_frame_size}};
  if (!client_nonce.empty()) h[field::client_nonce] = client_nonce;
  return h;
}

json make_challenge(std::string_view server_nonce, std::int64_t speaks) {
  return json{{field::hello, magic}, {field::version, speaks}, {field::server_nonce, server_nonce}};
}

json make_proof(std::string_view client_proof) {
  return json{{field::client_proof, client_proof}};
}

std::optional<std::string> parse_proof(const json& msg, error_code& ec, std::string& why) {
  if (msg.is_object())
    if (auto p = msg.find(field::client_proof); p != msg.end() && p->is_string())
      return p->get<std::string>();
  ec = server_errc::unauthenticated;
  why = "expected the answer to the server's challenge (a proof of the token)";
  return std::nullopt;
}

json make_hello_reply(const hello_reply& r) {
  json reply{{field::hello, magic},
             {field::version, r.version},
             {field::pid, r.server_pid},
             {field::client_id, r.client_id},
             {field::max_frame, r.max_frame_size}};
  if (!r.server_id.empty()) reply[field::server_id] = r.server_id;
  if (!r.server_proof.empty()) reply[field::server_proof] = r.server_proof;
  if (!r.role.empty()) reply[field::role] = r.role;
  return reply;
}

std::optional<hello_request> check_hello(const json& msg, error_code& ec, std::string& why) {
  const auto fail = [&](server_errc e, std::string text) -> std::optional<hello_request> {
    ec = e;
    why = std::move(text);
    return std::nullopt;
  };
  if (!msg.is_object()) return fail(server_errc::handshake_required, "expected a hello message");
  auto h = msg.find(field::hello);
  if (h == msg.end() || !h->is_string() || h->get_ref<const std::string&>() != magic)
    return fail(server_errc::handshake_required,
                "the first message must be a zproc hello; is this a zproc client?");
  auto v = msg.find(field::version);
  if (v == msg.end() || !v->is_number_integer())
    return fail(server_errc::handshake_required, "hello without a protocol version");
  const std::int64_t asked = v->get<std::int64_t>();
  if (asked < oldest_version || asked > version)
    return fail(server_errc::version_mismatch,
                "client speaks protocol version " + std::to_string(asked) +
                    ", this server speaks versions " + std::to_string(oldest_version) + " to " +
                    std::to_string(version) + ": use the same zproc release on both ends");
  hello_request r;
  r.version = asked;
  if (auto m = msg.find(field::max_frame); m != msg.end() && m->is_number_unsigned())
    r.max_frame_size = m->get<std::size_t>();
  if (auto n = msg.find(field::client_nonce); n != msg.end()) {
    if (!n->is_string() || n->get_ref<const std::string&>().empty())
      return fail(server_errc::handshake_required, "the hello's client nonce is not a string");
    r.client_nonce = n->get<std::string>();
  }
  return r;
}

std::optional<hello_reply> parse_hello_reply(const json& msg, error_code& ec, std::string& why) {
  try {
    return parse_hello_reply_unchecked(msg, ec, why);
  } catch (const json::exception& e) {
    ec = client_errc::protocol_error;
    why = std::string("malformed hello reply: ") + e.what();
    return std::nullopt;
  }
}

namespace {
std::optional<hello_reply> parse_hello_reply_unchecked(const json& msg, error_code& ec,
                                                       std::string& why) {
  if (msg.is_object()) {
    if (auto e = msg.find(field::error); e != msg.end()) {
      ec = decode_error(*e, why);
      if (ec == server_errc::version_mismatch) ec = client_errc::version_mismatch;
      return std::nullopt;
    }
    auto h = msg.find(field::hello);
    auto v = msg.find(field::version);
    if (h != msg.end() && *h == magic && v != msg.end() && v->is_number_integer()) {
      if (v->get<std::int64_t>() != version) {
        ec = client_errc::version_mismatch;
        why = "server speaks protocol version " + std::to_string(v->get<std::int64_t>()) +
              ", this client speaks version " + std::to_string(version);
        return std::nullopt;
      }
      hello_reply r;
      if (auto sn = msg.find(field::server_nonce); sn != msg.end()) {
        r.challenge = sn->get<std::string>();
        if (!r.challenge.empty()) return r;
        ec = client_errc::protocol_error;
        why = "the server's challenge has no nonce";
        return std::nullopt;
      }
      r.server_pid = msg.value(field::pid, std::int64_t{0});
      r.client_id = msg.value(field::client_id, std::uint64_t{0});
      r.max_frame_size = msg.value(field::max_frame, std::size_t{default_max_frame_size});
      r.server_id = msg.value(field::server_id, std::string());
      r.server_proof = msg.value(field::server_proof, std::string());
      r.role = msg.value(field::role, std::string());
      return r;
    }
  }
  ec = client_errc::protocol_error;
  why = "the server's answer to hello is not a zproc hello";
  return std::nullopt;
}
}  // namespace

json encode_error(error_code ec, std::string_view message) {
  std::string_view cat;
  int code = ec.value();
  if (ec.category() == server_category()) {
    cat = server_category_name;
  } else if (ec.category() == client_category()) {
    cat = client_category_name;
  } else {
    cat = server_category_name;
    code = static_cast<int>(server_errc::internal);
  }
  std::string text(message.empty() ? ec.message() : std::string(message));
  return json{{"c", cat}, {"n", code}, {"m", std::move(text)}};
}

error_code decode_error(const json& e, std::string& message) {
  try {
    return decode_error_unchecked(e, message);
  } catch (const json::exception& ex) {
    message = std::string("malformed error in reply: ") + ex.what();
    return client_errc::protocol_error;
  }
}

namespace {
error_code decode_error_unchecked(const json& e, std::string& message) {
  if (!e.is_object()) {
    message = "malformed error in reply";
    return client_errc::protocol_error;
  }
  message = e.value("m", std::string());
  const std::string cat = e.value("c", std::string());
  const int code = e.value("n", 0);
  if (cat == server_category_name) return {code, server_category()};
  if (cat == client_category_name) return {code, client_category()};
  message = "unknown error category '" + cat + "': " + message;
  return client_errc::protocol_error;
}
}  // namespace

json make_reply(std::uint64_t id, json result) {
  json r = json::object();
  r[field::id] = id;
  r[field::result] = std::move(result);
  return r;
}

json make_reply(std::uint64_t id, json result, std::uint64_t revision) {
  json r = make_reply(id, std::move(result));
  r[field::revision] = revision;
  return r;
}

namespace {

/// Copies `n` bytes to `o`; returns where the next bytes go.
char* put_bytes(char* o, const char* p, std::size_t n) noexcept {
  if (n != 0) std::memcpy(o, p, n);
  return o + n;
}

}  // namespace

reply_bytes encode_reply(std::uint64_t id, const json& result,
                         std::optional<std::uint64_t> revision) {
  // The keys in json::object's order ("i" < "r" < "rv"): the bytes make_reply() encodes to.
  // The fixed parts and a scalar result are written in buffers of their own, then the reply
  // at once where it is held: inline (no allocation) for a scalar or a short text, the
  // replies of a store op.
  char head[32];
  char* h = head;
  *h++ = static_cast<char>(revision ? 0x83 : 0x82);
  h = write_msgpack_string(h, field::id);
  h = write_msgpack_unsigned(h, id);
  h = write_msgpack_string(h, field::result);
  char tail[16];
  char* t = tail;
  if (revision) {
    t = write_msgpack_string(t, field::revision);
    t = write_msgpack_unsigned(t, *revision);
  }
  // The result: a scalar's bytes, or a string's header (its text follows).
  char value[9];
  char* v = write_msgpack_scalar(value, result);
  std::string_view text;
  if (!v && result.is_string()) {
    text = result.get_ref<const std::string&>();
    v = write_msgpack_string_header(value, text.size());
  } else if (!v) {  // structured or binary: the general writer
    std::string out(head, static_cast<std::size_t>(h - head));
    append_msgpack(out, result);
    out.append(tail, static_cast<std::size_t>(t - tail));
    return out;  // (adopted)
  }
  const auto head_n = static_cast<std::size_t>(h - head);
  const auto value_n = static_cast<std::size_t>(v - value);
  const auto tail_n = static_cast<std::size_t>(t - tail);
  // The largest reply of a scalar: a map header, "i" and a 9-byte id, "r" and a 9-byte scalar,
  // "rv" and a 9-byte revision.
  static_assert(1 + 2 + 9 + 2 + 9 + 3 + 9 <= reply_bytes::inline_capacity);
  reply_bytes out;
  char* o = out.assign_uninitialized(head_n + value_n + text.size() + tail_n);
  o = put_bytes(o, head, head_n);
  o = put_bytes(o, value, value_n);
  o = put_bytes(o, text.data(), text.size());
  put_bytes(o, tail, tail_n);
  return out;
}

namespace {

/// Bytes known at compile time (the fixed parts of a watch reply's envelope), so that copying
/// them is a few moves, not a call.
struct fixed_bytes {
  std::array<char, 24> b{};
  std::size_t n = 0;
  constexpr fixed_bytes& raw(unsigned char c) {
    b[n++] = static_cast<char>(c);
    return *this;
  }
  constexpr fixed_bytes& str(const char* s) {  // a fixstr (the field names are short)
    std::size_t len = 0;
    while (s[len] != '\0') ++len;
    raw(static_cast<unsigned char>(0xa0 | len));
    for (std::size_t i = 0; i < len; ++i) b[n++] = s[i];
    return *this;
  }
};

// {"i": <id>, "r": {"cursor": <cursor>, "updates": [<the update follows>]}}
constexpr fixed_bytes envelope_start = fixed_bytes{}.raw(0x82).str(field::id);
constexpr fixed_bytes envelope_middle =
    fixed_bytes{}.str(field::result).raw(0x82).str(field::cursor);
constexpr fixed_bytes envelope_end = fixed_bytes{}.str(field::updates).raw(0x91);

}  // namespace

reply_bytes watch_reply_head(std::uint64_t id, std::uint64_t cursor) {
  // One per woken watcher: at most 40 bytes, held inline.
  char id_bytes[9];
  char cursor_bytes[9];
  const auto id_n = static_cast<std::size_t>(write_msgpack_unsigned(id_bytes, id) - id_bytes);
  const auto cursor_n =
      static_cast<std::size_t>(write_msgpack_unsigned(cursor_bytes, cursor) - cursor_bytes);
  static_assert(envelope_start.n + 9 + envelope_middle.n + 9 + envelope_end.n <=
                reply_bytes::inline_capacity);
  reply_bytes out;
  char* o = out.assign_uninitialized(envelope_start.n + id_n + envelope_middle.n + cursor_n +
                                     envelope_end.n);
  o = put_bytes(o, envelope_start.b.data(), envelope_start.n);
  o = put_bytes(o, id_bytes, id_n);
  o = put_bytes(o, envelope_middle.b.data(), envelope_middle.n);
  o = put_bytes(o, cursor_bytes, cursor_n);
  put_bytes(o, envelope_end.b.data(), envelope_end.n);
  return out;
}

json make_error_reply(std::uint64_t id, error_code ec, std::string_view message) {
  json r = json::object();
  r[field::id] = id;
  r[field::error] = encode_error(ec, message);
  return r;
}

bool parse_reply(std::string_view payload, reply_view& out, bool check_last_result) {
  out = {};
  msgpack_reader r(payload);
  std::size_t n = 0;
  if (!r.map_header(n)) return false;
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!r.string(key)) return false;
    if (!check_last_result && i + 1 == n && key == field::result) {
      const char* at = r.position();
      out.result = std::string_view(at, static_cast<std::size_t>(payload.data() + payload.size() - at));
      out.result_checked = false;
      return !out.result.empty();
    }
    // The fields are the map's values: one level down, as decode_msgpack() counts depth.
    // (An id in a signed form is no id: json read it so, and the connection closed.)
    if (key == field::id && r.unsigned_form(out.id)) continue;
    if (key == field::error) {
      if (!r.value(out.error.emplace(), 1)) return false;
      continue;
    }
    std::string_view bytes;
    if (!r.value_bytes(bytes, 1)) return false;
    if (key == field::result) out.result = bytes;
    if (key == field::id) out.id = 0;  // not an unsigned integer
  }
  return r.at_end();
}

bool check_result(std::string_view result) noexcept {
  msgpack_reader r(result);
  std::string_view bytes;
  return r.value_bytes(bytes, 1) && r.at_end();
}

}  // namespace zproc::protocol
