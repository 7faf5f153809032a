// Durability: the append-only log of update records and the snapshots of a data directory.
//
//   DIR/snapshot   "ZPROCSNP" [u32 format = 2][u32 crc32][u64 length][payload],
//                  payload = MessagePack {"format":2,"namespaces":{ns:{"rev","data","mod","history"}}},
//                  replaced atomically (write snapshot.tmp, fsync, rename, fsync DIR).
//                  A format 1 snapshot (the bare MessagePack, no header, no checksum) is still read.
//   DIR/log        records appended since the snapshot: [u32 length][u32 crc32][payload],
//                  payload = MessagePack {"n": namespace, "r": update record}
//   (all integers big-endian)
//
// Recovery loads the snapshot, then replays the log records that follow it in revision order.
// Only a torn *last* write is dropped quietly (and cut off the file): a damaged record with no
// valid record anywhere after it, whose bytes are a partial record, a last record failing its
// checksum, or zeros to the end of the file (blocks allocated, never written). Any other damage
// (a bad record followed by valid ones, a revision that goes back or skips, a snapshot failing
// its checksum) throws zproc::error naming the file, the offset and the last good revision, and
// leaves every file as it was; with `repair`, the good prefix is kept and the rest moved aside to
// DIR/log.corrupt-<time> (a damaged snapshot, and the log that continues it, to *.corrupt-<time>).
// Plain POSIX file I/O, synchronous: the server calls it on its strand.
#pragma once

#include "server/history.hpp"
#include "server/store.hpp"

#include <zproc/server.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace zproc::server_detail {

struct recovery_report {
  std::size_t namespaces = 0;
  std::size_t replayed = 0;        // log records applied after the snapshot
  std::size_t dropped_bytes = 0;   // a torn tail cut off the log
  /// What recovery did that an operator should hear of (a torn tail dropped, a repair), one
  /// line each; the server prints them to stderr.
  std::vector<std::string> notes;
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
  recovery_report recover(store& s);

  /// Appends one committed update; returns once it is written (and fsynced, by policy).
  void append(const std::string& ns, const update_record& r);

  /// A snapshot is due (after `snapshot_every` appends).
  bool snapshot_due() const noexcept { return appended_ >= snapshot_every_; }
  /// Writes a snapshot of `s` and starts a new, empty log.
  void snapshot(const store& s);

  /// fsync now if anything was written since the last one (the interval policy's timer).
  void sync();

 private:
  void load_snapshot(store& s, recovery_report& report);
  void replay_log(store& s, recovery_report& report);
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
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_sync_;
};

}  // namespace zproc::server_detail
