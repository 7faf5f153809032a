// Durability: the append-only log of update records and the snapshots of a data directory.
//
//   DIR/snapshot   MessagePack {"format":1,"namespaces":{ns:{"rev","data","history"}}},
//                  replaced atomically (write snapshot.tmp, fsync, rename, fsync DIR)
//   DIR/log        records appended since the snapshot: [u32 length][u32 crc32][payload],
//                  payload = MessagePack {"n": namespace, "r": update record}
//
// Recovery loads the snapshot, then replays the log records that follow it in revision order;
// the first record that is short or fails its checksum ends the log (a torn write) and the
// file is truncated there. Plain POSIX file I/O, synchronous: the server calls it on its strand.
#pragma once

#include "server/history.hpp"
#include "server/store.hpp"

#include <zproc/server.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace zproc::server_detail {

struct recovery_report {
  std::size_t namespaces = 0;
  std::size_t replayed = 0;        // log records applied after the snapshot
  std::size_t dropped_bytes = 0;   // a torn tail cut off the log
};

class journal {
 public:
  /// Opens (creating) the data directory. Throws zproc::error on failure.
  journal(std::string dir, server_config::fsync_policy policy,
          std::chrono::milliseconds interval, std::size_t snapshot_every);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Restores `s` from the directory (call once, before serving).
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
  void write_all(const std::string& bytes);

  std::string dir_;
  server_config::fsync_policy policy_;
  std::chrono::milliseconds interval_;
  std::size_t snapshot_every_;
  int log_fd_ = -1;
  std::size_t appended_ = 0;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_sync_;
};

}  // namespace zproc::server_detail
