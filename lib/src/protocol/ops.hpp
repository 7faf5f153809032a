// The one place that defines the operations of the wire protocol (docs/protocol.md): each op's
// name, whether a client may send it again after a reconnect, the names of every request and
// reply field, and the builders of the requests a client sends. Nothing else in lib/ spells an
// op or a field (scripts/check-layers checks the op names). Plain functions, no I/O.
#pragma once

#include "protocol/packed_request.hpp"

#include <zproc/detail/op.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::protocol {

using nlohmann::json;
using detail::op;
using detail::predicate;

struct op_traits {
  op code;
  std::string_view name;
  /// Safe to send again on a new connection after the old one broke before the reply: reads
  /// that change nothing on the server, and watches (which carry their cursor). Everything
  /// else (writes, locks, commits, task and process-record ops, cancels) never goes twice.
  bool idempotent;
};

/// Every op, in the order of the enum (checked below).
inline constexpr std::array<op_traits, 40> ops = {{
    {op::get, "get", true},
    {op::set, "set", false},
    {op::del, "del", false},
    {op::contains, "contains", true},
    {op::size, "size", true},
    {op::keys, "keys", true},
    {op::values, "values", true},
    {op::items, "items", true},
    {op::update, "update", false},
    {op::pop, "pop", false},
    {op::popitem, "popitem", false},
    {op::setdefault, "setdefault", false},
    {op::clear, "clear", false},
    {op::copy, "copy", true},
    {op::replace, "replace", false},
    {op::revision, "revision", true},
    {op::incr, "incr", false},
    {op::cas, "cas", false},
    {op::append, "append", false},
    {op::txn, "txn", false},
    {op::read, "read", true},
    {op::commit, "commit", false},
    {op::lock, "lock", false},
    {op::unlock, "unlock", false},
    {op::at, "at", true},
    {op::history, "history", true},
    {op::watch, "watch", true},
    {op::cancel, "cancel", false},
    {op::ping, "ping", true},
    {op::proc_start, "proc_start", false},
    {op::proc_update, "proc_update", false},
    {op::proc_list, "proc_list", true},
    {op::task_submit, "task_submit", false},
    {op::task_take, "task_take", false},
    {op::task_done, "task_done", false},
    {op::task_wait, "task_wait", false},
    {op::task_cancel, "task_cancel", false},
    {op::task_retire, "task_retire", false},
    {op::task_info, "task_info", false},
    {op::more, "more", false},
}};
static_assert([] {
  for (std::size_t i = 0; i < ops.size(); ++i)
    if (static_cast<std::size_t>(ops[i].code) != i) return false;
  return static_cast<std::size_t>(op::more) + 1 == ops.size();
}(), "protocol::ops must list every op once, in the order of the enum");

inline constexpr std::size_t op_count = ops.size();
constexpr std::size_t index(op o) noexcept { return static_cast<std::size_t>(o); }
constexpr std::string_view name(op o) noexcept { return ops[index(o)].name; }
constexpr bool idempotent(op o) noexcept { return ops[index(o)].idempotent; }
/// The server may hold a request of this op unanswered for long (a lock wait, a watch, a task
/// take or wait): a client that gives one up sends `cancel` so that the server forgets it.
constexpr bool parks(op o) noexcept {
  return o == op::lock || o == op::watch || o == op::task_take || o == op::task_wait;
}
/// The op named `name`; nullopt for a name no server knows.
std::optional<op> parse_op(std::string_view name) noexcept;

/// Field names (short: they are in every message).
namespace field {
// The envelope and the hello handshake.
inline constexpr const char* hello = "hello";      // handshake marker, value "zproc"
inline constexpr const char* version = "version";  // handshake: protocol version
inline constexpr const char* max_frame = "max_frame";
inline constexpr const char* pid = "pid";
inline constexpr const char* client_id = "client";
inline constexpr const char* server_id = "sid";  // hello reply: which server (its data) this is
inline constexpr const char* client_nonce = "cn";  // hello: the client's nonce (it has a token)
inline constexpr const char* server_nonce = "sn";  // challenge: the server's nonce
inline constexpr const char* client_proof = "cp";  // the client's answer to the challenge
inline constexpr const char* server_proof = "sp";  // hello reply: the server's proof
inline constexpr const char* role = "role";        // hello reply: the connection's role
inline constexpr const char* id = "i";        // request id; 0 = the connection itself
inline constexpr const char* op = "o";        // operation name
inline constexpr const char* ns = "n";        // namespace
inline constexpr const char* key = "k";       // key
inline constexpr const char* value = "v";     // value / object argument
inline constexpr const char* fallback = "d";  // default value (get, pop, setdefault)
inline constexpr const char* result = "r";    // reply: result
inline constexpr const char* revision = "rv";  // reply: namespace revision after the op
inline constexpr const char* error = "e";     // reply: {c: category, n: code, m: message}
inline constexpr const char* handle = "h";    // the writing state handle (records, watchers)
// Pages of keys/items (any of these makes the request paged) and of history.
inline constexpr const char* after = "after";    // start after this key (exclusive); watch: rev
inline constexpr const char* prefix = "prefix";  // only keys that start with this
inline constexpr const char* limit = "limit";    // at most this many keys
inline constexpr const char* bytes = "bytes";    // byte budget of the page (keys, items, history)
inline constexpr const char* keys_page = "keys";    // reply of a paged keys: the keys
inline constexpr const char* items_page = "items";  // reply of a paged items: [[key, value]...]
inline constexpr const char* next = "next";  // reply of a page: the next page's "after", or nil
// cas: {k, v, e | absent}
inline constexpr const char* expected = "e";  // the value the key must hold
inline constexpr const char* absent = "absent";  // true: the key must be absent
// txn: {if: [compare], then: [op], else: [op]} -> {ok, results}
inline constexpr const char* txn_if = "if";
inline constexpr const char* txn_then = "then";
inline constexpr const char* txn_else = "else";
inline constexpr const char* ok = "ok";
inline constexpr const char* results = "results";
inline constexpr const char* test = "t";  // a compare: {k, t: <compare test>, v}
// read: {keys?} -> {rev, data, mods}; commit: {base | mods, set, del, h}
inline constexpr const char* keys = "keys";  // read, watch: only these keys
inline constexpr const char* rev = "rev";    // read reply; at: the revision asked for
inline constexpr const char* data = "data";
inline constexpr const char* mods = "mods";  // {key: the revision of its last write}
// lock: {read?: true, keys?} -> the lease (ms), or with `read`: {lease, read: <read's reply>}
inline constexpr const char* read_result = "read";
inline constexpr const char* lease = "lease";
inline constexpr const char* base = "base";  // commit: the revision read; watch: a snapshot
inline constexpr const char* set = "set";    // commit: keys written
inline constexpr const char* del = "del";    // commit: keys erased
// history: {from, to, max, bytes}
inline constexpr const char* from = "from";
inline constexpr const char* to = "to";
inline constexpr const char* max = "max";  // history, watch: at most this many records
// cancel: {target: the request id to cancel}
inline constexpr const char* target = "target";
// watch: {n, h, keys?, exclude?, pred?, identical?, own?, live?, snap?, now?, max, base?,
// after? | oldest?, pin?, stream?} -> {cursor, updates, base?, base_rv?, tail?, now?}
inline constexpr const char* exclude = "exclude";
inline constexpr const char* pred = "pred";  // {kind: <predicate>, k, v?}
inline constexpr const char* kind = "kind";
inline constexpr const char* identical = "identical";
inline constexpr const char* own = "own";
inline constexpr const char* live = "live";
inline constexpr const char* snap = "snap";
inline constexpr const char* now = "now";
inline constexpr const char* oldest = "oldest";
inline constexpr const char* pin = "pin";
// Version 3: a watch that stays registered across its replies, the server sending at most
// "stream" replies (its credit) until the client grants more: more: {target, credit} -> bool.
inline constexpr const char* stream = "stream";
inline constexpr const char* credit = "credit";
inline constexpr const char* cursor = "cursor";
inline constexpr const char* updates = "updates";
inline constexpr const char* base_rv = "base_rv";
inline constexpr const char* tail = "tail";
}  // namespace field

/// An update record as it travels (history and watch replies) and as the journal keeps it.
namespace update_field {
inline constexpr const char* revision = "rv";
inline constexpr const char* time = "t";
inline constexpr const char* client = "c";
inline constexpr const char* handle = "h";
inline constexpr const char* identical = "id";
inline constexpr const char* changes = "ch";  // [{k, b?, a?}]: key, before, after
inline constexpr const char* before = "b";
inline constexpr const char* after_value = "a";
inline constexpr const char* diff = "d";      // {s: {key: value}, x: [erased keys]}
inline constexpr const char* diff_set = "s";
inline constexpr const char* diff_erased = "x";
}  // namespace update_field

/// The tests of a txn compare.
namespace compare_test {
inline constexpr std::string_view equal = "eq";
inline constexpr std::string_view not_equal = "ne";
inline constexpr std::string_view exists = "exists";
inline constexpr std::string_view absent = "absent";
inline constexpr std::string_view modified_at = "mod_eq";
inline constexpr std::string_view modified_before = "mod_lt";
inline constexpr std::string_view modified_after = "mod_gt";
}  // namespace compare_test

inline constexpr std::array<std::string_view, 7> predicate_names = {
    "equal", "not_equal", "truthy", "falsy", "none", "not_none", "available"};
constexpr std::string_view name(predicate p) noexcept {
  return predicate_names[static_cast<std::size_t>(p)];
}
std::optional<predicate> parse_predicate(std::string_view name) noexcept;

// --- requests ---------------------------------------------------------------------------------

/// The op of a request: nullopt if it names none (or one no server knows).
std::optional<op> op_of(const json& request) noexcept;

/// {"o": op}, and {"o": op, "n": ns}.
json make(op o);
json make(op o, const std::string& ns);

/// cancel: gives up the request with id `target`, made on namespace `ns` (empty: it named none,
/// a task take or wait): a server of several shards looks for it there (without one, on all).
json cancel_request(std::uint64_t target, const std::string& ns = {});
/// more: the streaming watch `target` (of namespace `ns`) may send `credit` more replies
/// (packed: a watcher that keeps up sends one per few updates).
packed_request more_request(std::uint64_t target, std::uint64_t credit,
                            std::string_view ns = {});
/// read: what an atomic() body starts from (`keys` empty: the whole namespace).
json read_request(const std::string& ns, const std::vector<std::string>& keys);
/// lock that reads the namespace (`keys` empty: all of it) when it is granted: the grant's
/// result is {lease, read: <what read_request() would get>} (a server that does not know the
/// field grants the lease alone: lock_grant_read() then finds nothing, and the holder reads).
json lock_request(const std::string& ns, const std::vector<std::string>& keys);
/// The read that came with a lock's grant, or nullptr.
const json* lock_grant_read(const json& grant);
/// commit: writes `changed` (the body's snapshot) over `read_reply` (the read's reply).
json commit_request(const std::string& ns, std::uint64_t handle, bool keys_declared,
                    const json& read_reply, const json& changed);

}  // namespace zproc::protocol

namespace zproc::detail {
/// The protocol layer's access to a request's wire form.
struct request_access {
  static request wrap(json body) { return request(std::move(body)); }
  static request wrap(protocol::packed_request p) noexcept {
    request r;
    r.packed_ = std::move(p.entries);
    r.fields_ = p.fields;
    r.op_ = p.code ? static_cast<int>(*p.code) : -1;
    r.too_deep_ = p.too_deep;
    return r;
  }
  /// The request as json (a packed one is unpacked: for the few that are built field by field,
  /// and tests).
  static json& body(request& r) {
    if (!r.body_) {
      r.body_ = std::make_unique<json>(unpacked(r));
      r.packed_.clear();
      r.fields_ = 0;
    }
    return *r.body_;
  }
  static json body(const request& r) { return r.body_ ? *r.body_ : unpacked(r); }
  /// Adds a field (a packed request stays packed).
  static void add(request& r, std::string_view key, const json& value) {
    if (r.body_) {
      (*r.body_)[std::string(key)] = value;
      return;
    }
    protocol::append_entry(r.packed_, key, value, r.too_deep_);
    ++r.fields_;
  }
  /// The request, packed, as the connection sends it.
  static protocol::packed_request take(request&& r) {
    if (r.body_) return protocol::packed_request::from(*r.body_);
    protocol::packed_request p;
    p.entries = std::move(r.packed_);
    p.fields = r.fields_;
    if (r.op_ >= 0) p.code = static_cast<op>(r.op_);
    p.too_deep = r.too_deep_;
    return p;
  }

 private:
  static json unpacked(const request& r) {
    protocol::packed_request p;
    p.entries = r.packed_;
    p.fields = r.fields_;
    return p.to_json();
  }
};
}  // namespace zproc::detail
