// Watchers on the server: a watch request is answered with the next matching updates after the
// client's cursor (a revision), found in the history or, if none yet, when a write makes one.
// Plain logic, no I/O: the engine calls it and returns the replies it produces.
//
// Request (fields besides i/o/n):
//   after    revision the client has seen (absent: the current revision)
//   live     only updates written after this request (skip the backlog)
//   keys     [k...]: only updates touching one of these keys; with exclude: touching another key
//   exclude  bool
//   pred     {"kind": equal|not_equal|truthy|falsy|none|not_none|available, "k": key, "v": value}
//            only updates of that key after which the predicate holds
//   now      with pred: answer at once (with a snapshot) if the predicate holds already
//   identical  also updates that changed nothing
//   own      also the watcher's own handle's writes (h = that handle)
//   snap     the client keeps a replica: send diffs; base=true asks for a full snapshot first
//   max      at most this many updates per reply
//   pin      answer at once, with the cursor (where the watch starts), even with no update
//   stream   (version 3) a positive count: the watch stays registered after each reply and the
//            server sends at most that many replies (its *credit*) until the client grants more
//            (`more`); out of credit it is held back like a congested watcher (stalled, keeping
//            its cursor: it misses nothing). Without: one reply, then the client asks again.
// Reply "r": {"cursor": C, "updates": [record + {"d": diff}?], "base"?: {...}, "base_rv"?: R,
//             "tail"?: diff, "now"?: true}
#pragma once

#include "protocol/reply_bytes.hpp"
#include "protocol/watch_request.hpp"
#include "server/client_counts.hpp"
#include "server/history.hpp"
#include "server/op_error.hpp"
#include "server/store.hpp"

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace zproc::server_detail {

struct predicate {
  enum class kind { equal, not_equal, truthy, falsy, none, not_none, available };
  kind what = kind::available;
  std::string key;
  json value;

  /// Whether the predicate holds for a key's value (empty optional: the key is absent).
  bool holds(const std::optional<json>& v) const;
};

struct watch_spec {
  std::uint64_t client_id = 0;
  std::uint64_t request_id = 0;
  std::uint64_t handle = 0;
  std::string ns;
  std::vector<std::string> keys;
  bool exclude = false;
  std::optional<predicate> pred;
  bool identical_okay = false;
  bool include_own = false;
  bool live = false;
  bool snapshot = false;  // send diffs so the client's replica follows
  std::size_t max = 256;

  bool matches(const update_record& r) const;
};

/// A reply for a client's request: json, or already MessagePack (`bytes`, and after them
/// `packed` if set).
struct delivery {
  std::uint64_t client_id;
  json reply;  // a complete reply message (with the request id), unless encoded
  /// A woken watcher's update record, encoded once and shared by every watcher it wakes (never
  /// copied): it follows `bytes`, the reply's envelope, in the same frame.
  std::shared_ptr<const std::string> packed;
  std::uint64_t request_id = 0;  // when encoded: the request it answers
  /// The reply already MessagePack (protocol::encode_reply), or with `packed` its envelope
  /// (protocol::watch_reply_head); empty: `reply` is the reply.
  protocol::reply_bytes bytes;
  /// With `--fsync always`: the count of the journal's records a sync must cover before this
  /// reply leaves the server (0: none), set by the session that made it (session::flush).
  std::uint64_t durable = 0;

  bool encoded() const noexcept { return packed || !bytes.empty(); }
  /// The reply as json, whichever form it has (`bytes` decoded; `packed` ones: null). For
  /// tests and logs, not the hot path.
  json message() const;
  /// Its size on the wire if it is encoded already; nullopt for a json reply (what encoding it
  /// would cost is the caller's to judge).
  std::optional<std::size_t> encoded_size() const noexcept {
    if (!encoded()) return std::nullopt;
    return bytes.size() + (packed ? packed->size() : 0);
  }
};

class watch_registry {
 public:
  /// The most replies a streaming watch may be owed at once (a larger credit is cut to this).
  static constexpr std::uint64_t max_credit = 1024;
  /// A stream that catches up (it starts behind, it was granted more, it was stalled) sends
  /// replies up to about this many bytes at once; the rest as its connection drains, as a
  /// congested client's watchers do (held_back(), resume()).
  static constexpr std::size_t burst_bytes = 1u << 20;

  /// Handles a watch request: answers at once (appends the reply to `out`, or throws op_error)
  /// or registers it until a write matches; a stream is registered in either case, and a stream
  /// that starts behind is answered as far as its credit goes. A backlog of exactly the next
  /// record (a watcher that asks again just after a write) is answered with the record's shared
  /// encoding, as a woken watcher is.
  void watch(store& s, const protocol::watch_request& request, std::uint64_t client_id,
             std::vector<delivery>& out);
  /// The client grants its streaming watch `request_id` `credit` more replies; one held back
  /// for want of credit catches up now (unless its client is `congested`). False if no such
  /// stream is registered (it ended, or was never one).
  bool more(const store& s, std::uint64_t client_id, std::uint64_t request_id,
            std::uint64_t credit, bool congested, std::vector<delivery>& out);
  /// A watch request as json, read as decode_watch_request() reads its MessagePack; a field of
  /// the wrong type throws op_error (bad_request) saying which.
  static protocol::watch_request request_of(const json& request);

  /// A write was committed to `ns`: answers the waiters it matches. A waiter whose client is
  /// `congested` (its connection is over its output limit), or whose reply cannot be built now
  /// (no memory), is not answered: it stays, *stalled*, with its cursor, and catches up later
  /// (resume(), retry_stalled()) with every update since, or `compacted` if the history no
  /// longer holds them. A waiter is removed only once its reply is in `out`.
  void notify(store& s, const std::string& ns, const update_record& r,
              const std::unordered_set<std::uint64_t>& congested, std::vector<delivery>& out);
  /// notify() of `revision` failed half-way: every waiter of `ns` is stalled (catches up at
  /// retry_stalled()).
  void stall_namespace(const std::string& ns, std::uint64_t revision) noexcept;
  /// The client's connection drained: its stalled waiters catch up, until their replies make
  /// `budget` bytes. Returns true if none is left stalled (but streams out of credit, which
  /// wait for the client).
  bool resume(store& s, std::uint64_t client_id, std::size_t budget, std::vector<delivery>& out);
  /// After a failure to build a reply, stalled waiters of clients that are not congested catch
  /// up (the server's tick).
  void retry_stalled(store& s, const std::unordered_set<std::uint64_t>& congested,
                     std::vector<delivery>& out);
  std::size_t stalled() const noexcept { return stalled_; }
  /// Whether a stream of this client stopped catching up at burst_bytes with more to send: it
  /// goes on at the client's resume() (the session treats the client as congested).
  bool held_back(std::uint64_t client_id) const {
    return !held_back_.empty() && held_back_.count(client_id) != 0;
  }

  /// Forgets a pending watch (the client cancelled it); true if it was pending.
  bool cancel(std::uint64_t client_id, std::uint64_t request_id);
  /// Forgets every pending watch of a client (its connection closed).
  void drop_client(std::uint64_t client_id);

  std::size_t pending() const noexcept { return by_id_.size(); }
  std::size_t pending_of(std::uint64_t client_id) const;
  // (How many one client may have: the engine's limits.max_parked_per_connection.)

 private:
  struct waiter;
  using waiter_list = std::list<waiter>;
  /// The waiters indexed under one key (list positions stay valid: removal is O(1)).
  using slot_list = std::list<waiter_list::iterator>;
  struct slot {
    std::string key;
    slot_list* list;
    slot_list::iterator pos;
  };
  struct waiter {
    watch_spec spec;
    std::uint64_t cursor;          // history scanned up to here
    std::uint64_t replica;         // the client's replica is at this revision (snapshot watchers)
    std::uint64_t eligible_after;  // updates at or before this are not delivered (live)
    std::vector<slot> slots{};     // where the index holds it
    std::uint64_t seen = 0;        // the revision notify() last looked at it for
    std::uint64_t credit = 0;      // a stream: replies it may still send
    bool stream = false;           // stays registered across replies
    bool stalled = false;          // a match after `cursor` is not answered yet
  };
  /// Whether a reply may go to `w` now (a stream needs credit; its connection's congestion is
  /// the caller's to check).
  static bool answerable(const waiter& w) noexcept { return !w.stream || w.credit > 0; }
  /// `it` was sent a reply up to `cursor`: a one-shot watch is removed; a stream moves on (its
  /// client's replica is at `cursor` too) with one credit less.
  void answered(waiter_list::iterator it, std::uint64_t cursor);
  using key_type = std::pair<std::uint64_t, std::uint64_t>;  // client, request

  static std::vector<std::string> index_keys(const watch_spec& spec);
  waiter_list::iterator add(waiter w);
  void remove(waiter_list::iterator it);
  /// Builds the reply result for updates [first..] of history, from the waiter's position.
  json answer(const namespace_state& ns, waiter& w, std::span<const update_record* const> hits,
              std::uint64_t cursor) const;
  /// The reply to `w` with `hits`, up to `cursor`: the shared encoding of the one record when it
  /// is exactly that, else a reply built by answer().
  delivery reply_for(const namespace_state& ns, waiter& w,
                     std::span<const update_record* const> hits, std::uint64_t cursor) const;
  /// The records after the waiter's cursor that it waits for (at most spec.max, scanning at
  /// most scan_limit records); `scanned`: the last revision looked at.
  static std::vector<const update_record*> scan(const namespace_state& ns, const waiter& w,
                                                std::uint64_t& scanned);
  /// A stalled waiter answered from its cursor if the history holds a match (or `compacted`),
  /// else made up to date and left waiting; a stream is answered until it is up to date or out
  /// of credit (then it stays stalled). A stream out of credit is left as it is.
  /// Replies charge `budget` (their bytes); false if a stream stopped with the budget spent
  /// and more to send (it stays stalled).
  bool catch_up(const store& s, waiter_list::iterator it, std::vector<delivery>& out,
                std::size_t& budget);
  /// catch_up() with burst_bytes, outside resume(): a stream held back by the budget marks its
  /// client held back; out of memory, it stays stalled for the tick (retry_stalled()).
  void burst(const store& s, waiter_list::iterator it, std::vector<delivery>& out);
  /// The bytes a reply will take on the wire (about, for a json one).
  static std::size_t reply_bytes(const delivery& d);
  void set_stalled(waiter& w, bool stalled) noexcept;
  /// Stalls a waiter that `revision` matched (its cursor moves up to just before it).
  void stall(waiter& w, std::uint64_t revision) noexcept;

  waiter_list waiters_;
  std::map<key_type, waiter_list::iterator> by_id_;
  // Index: waiters by namespace, and within it by watched key ("" = every update).
  std::unordered_map<std::string, std::unordered_map<std::string, slot_list>> by_ns_;
  client_counts per_client_;
  std::unordered_set<std::uint64_t> held_back_;  // see held_back()
  std::size_t stalled_ = 0;
  bool retry_due_ = false;  // a reply could not be built: retry_stalled() has work
};

}  // namespace zproc::server_detail
