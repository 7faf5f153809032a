// Durability: the append-only log of update records and the snapshots of a data directory.
//
//   DIR/snapshot   "ZPROCSNP" [u32 format = 3][u32 crc32][u64 length][payload], the crc32 and
//                  the length of the payload; payload = a stream of items, each
//                  [u32 length][MessagePack]:
//                    {"format":3,"namespaces":N}
//                    per namespace: {"ns":name,"rev":R}; its history up to R, each record as
//                    {"hr": record without its changes} and {"hc":[change...]} pieces; then
//                    {"d":[[key,value,rev of its last write]...]} pieces (its keys in order).
//                    A piece holds ~1000 keys (changes) or ~256 KiB.
//                    {"end":N}
//                  Written in steps between requests (journal::snapshot_step) while the server
//                  keeps serving, so the data is *fuzzy*: each key as of some revision >= R.
//                  Replaying the log's records after R (absolute after-values per key) makes it
//                  exact. Written to snapshot.tmp, the header patched at the end, then fsync,
//                  rename to snapshot and fsync DIR on a thread of its own; a snapshot.tmp found
//                  at recovery is an unfinished one and is removed.
//                  Formats 1 (bare MessagePack, no header) and 2 (one MessagePack map
//                  {"format":2,"namespaces":{ns:{"rev","data","mod","history"}}}) are still read.
//   DIR/log        records appended since the snapshot began: [u32 length][u32 crc32][payload],
//                  payload = MessagePack {"n": namespace, "r": update record}
//   DIR/log.old    the log before the snapshot in progress began (renamed from DIR/log when it
//                  began); removed once the snapshot is durable. Until then it holds records the
//                  last complete snapshot lacks.
//   (all integers big-endian)
//
// Recovery loads the snapshot, then replays DIR/log.old (if there) and DIR/log in revision order,
// skipping records the snapshot already holds. Only a torn *last* write is dropped quietly (and
// cut off the file): a damaged record with no valid record anywhere after it, whose bytes are a
// partial record, a last record failing its checksum, or zeros to the end of the file (blocks
// allocated, never written). Any other damage (a bad record followed by valid ones, a revision
// that goes back or skips, a snapshot failing its checksum) throws zproc::error naming the file,
// the offset and the last good revision, and leaves every file as it was; with `repair`, the good
// prefix is kept and the rest moved aside to DIR/log.corrupt-<time> (a damaged snapshot, and the
// logs that continue it, to *.corrupt-<time>).
// Plain POSIX file I/O, synchronous, under the journal's mutex (appends from the shards'
// threads, syncs and snapshot steps from the server's strand); except a snapshot's fsync and rename,
// which run on a short-lived thread that touches only its own files (the server polls for it).
#pragma once

#include "server/history.hpp"
#include "server/store_set.hpp"

#include <zproc/server.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace zproc::server_detail {

struct recovery_report {
  std::size_t namespaces = 0;
  std::size_t replayed = 0;        // log records applied after the snapshot
  std::size_t dropped_bytes = 0;   // a torn tail cut off the log
  /// What recovery did that an operator should hear of (a torn tail dropped, a repair), one
  /// line each; the server prints them to stderr.
  std::vector<std::string> notes;
  /// A repair dropped records or a snapshot: the state served from now on is not the one served
  /// before (revisions that clients saw are gone, and the next writes reuse their numbers).
  bool repaired = false;
};

class journal {
 public:
  /// Opens (creating) the data directory. Throws zproc::error on failure.
  /// `repair`: recover() keeps the good prefix of damaged files and moves the rest aside
  /// instead of refusing (server_config::repair).
  journal(std::string dir, server_config::fsync_policy policy,
          std::chrono::milliseconds interval, std::size_t snapshot_every, bool repair = false);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Restores `s` from the directory (call once, before serving). Throws zproc::error
  /// (std::errc::illegal_byte_sequence) if a file is damaged other than by a torn last write,
  /// unless constructed with `repair`; nothing on disk is changed then.
  recovery_report recover(const store_set& s);

  /// Appends one committed update; returns once it is written (and fsynced, by policy, unless
  /// defer_syncs()). Returns whether a snapshot is due now (snapshot_due(), read under the
  /// same lock).
  bool append(const std::string& ns, const update_record& r);

  /// A snapshot is due (after `snapshot_every` appends) and none is in progress.
  bool snapshot_due() const;
  /// Whether a snapshot is in progress (begun, not yet durable).
  bool snapshot_running() const;

  /// Begins a snapshot of `s`: freezes each namespace's revision and history (pointers to the
  /// immutable records), starts a new log (the old one becomes DIR/log.old) and writes the
  /// snapshot's header. The data follows in snapshot_step(). Never throws: a failure is a note
  /// (take_notes()) and no snapshot.
  void begin_snapshot(const store_set& s);

  enum class snapshot_progress {
    idle,     ///< no snapshot in progress (the last one finished, failed, or none began)
    more,     ///< call snapshot_step() again (after letting other work in)
    syncing,  ///< everything is written; a thread makes it durable: poll snapshot_step()
  };
  /// Writes the next piece of the snapshot in progress (~1000 keys or ~256 KiB, bounded work),
  /// or, once all is written, starts its fsync + rename on a thread; polls that thread. `s` is
  /// the store given to begin_snapshot(), possibly changed since. Never throws: a failure
  /// abandons the snapshot (DIR/log.old stays, the next snapshot covers it) with a note.
  snapshot_progress snapshot_step(const store_set& s);
  /// The same, reading only namespaces of shard `shard` of `s` (the one whose lock the caller
  /// holds): the piece stops where the next namespace is another shard's. `shard` is what
  /// snapshot_shard() said, or no_shard (the caller holds no lock: it reads none).
  snapshot_progress snapshot_step(const store_set& s, std::size_t shard);
  static constexpr std::size_t no_shard = static_cast<std::size_t>(-1);
  /// The shard of `s` whose namespace the snapshot in progress reads next; nullopt when its
  /// next step reads none (no snapshot, its end, its sync).
  std::optional<std::size_t> snapshot_shard(const store_set& s) const;
  /// Runs the snapshot in progress to its end now (stop(); recovery), waiting for its fsync.
  void finish_snapshot(const store_set& s);
  /// Writes a whole snapshot of `s` now (begin + every step + wait).
  void snapshot(const store_set& s) {
    begin_snapshot(s);
    finish_snapshot(s);
  }
  /// What went wrong with snapshots since the last call (one line each), for the operator.
  std::vector<std::string> take_notes();

  /// fsync now if anything was written since the last one (the interval policy's timer).
  /// Never throws: a failure is a note (take_notes()), once until a sync works again.
  void sync();

  /// The `always` policy, synced by the caller: an append does not wait for the disk; the
  /// server holds each reply until a sync covers what was written before it (group_commit).
  void defer_syncs() noexcept { deferred_ = true; }
  bool syncs_deferred() const noexcept { return deferred_; }
  /// The count of records written, if some are not durable yet (else 0): what a reply made
  /// now must wait for. Lock-free.
  std::uint64_t unsynced() const noexcept {
    const std::uint64_t w = written_.load(std::memory_order_acquire);
    return synced_.load(std::memory_order_acquire) < w ? w : 0;
  }
  /// Whether record `seq` is durable. Lock-free.
  bool synced_through(std::uint64_t seq) const noexcept {
    return synced_.load(std::memory_order_acquire) >= seq;
  }
  /// Makes the log durable through record `seq`: one fdatasync at a time, outside the
  /// journal's mutex, so that the shards go on appending meanwhile and the next sync covers
  /// all of them at once (group commit); returns at once if a sync since covered `seq`.
  /// Throws what fdatasync reports.
  void sync_through(std::uint64_t seq);

 private:
  struct snapshot_job;
  struct replay_cursor;
  void load_snapshot(const store_set& s, recovery_report& report);
  void replay_log(const store_set& s, recovery_report& report, const std::string& name, replay_cursor& at);
  void abandon_snapshot(const std::string& why);
  /// A step holding `mutex_` throughout, reading namespaces of any shard (one engine's own
  /// journal; finish_snapshot()); also ends a snapshot that is syncing.
  snapshot_progress step_locked(const store_set& s);
  /// Builds the next piece of `j` and writes it to the snapshot file (the end's patch too);
  /// true once everything is written. Touches only `j` and the stores: no lock needed beyond
  /// the store's shard's. Throws on a failure.
  bool write_piece(snapshot_job& j, const store_set& s, std::optional<std::size_t> only) const;
  /// Under `mutex_`, everything written: starts the fsync + rename thread (phase syncing).
  snapshot_progress start_durable_locked(snapshot_job& j);
  /// A fresh DIR/<base>.corrupt-<UTC time> path (nothing there yet).
  std::string corrupt_path(const std::string& base) const;

  std::string dir_;
  server_config::fsync_policy policy_;
  std::chrono::milliseconds interval_;
  std::size_t snapshot_every_;
  bool repair_;
  bool snapshot_loaded_ = false;
  int log_fd_ = -1;
  std::size_t appended_ = 0;
  // Records written to the log (a count that only grows), and of them those an fdatasync
  // covered: changed under `mutex_`, read without it (unsynced()).
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> synced_{0};
  bool dirty_ = false;         // synced_ < written_
  bool deferred_ = false;      // defer_syncs()
  std::chrono::steady_clock::time_point last_sync_;
  std::unique_ptr<snapshot_job> snap_;  // the snapshot in progress
  std::vector<std::string> notes_;
  // sync() (the interval timer's) failed: noted once, until a sync works (sync_through())
  bool sync_failing_ = false;
  /// Guards everything above once serving began: the shards of a server append from their
  /// threads, the server's strand syncs and writes snapshots (recover() runs before either).
  mutable std::mutex mutex_;
  /// Held around each fdatasync of the log (and while the log is replaced, so that no sync
  /// uses a closed descriptor); taken before `mutex_`, never while holding it.
  std::mutex sync_mutex_;
};

}  // namespace zproc::server_detail
