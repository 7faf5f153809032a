#include "server/journal.hpp"

#include <boost/crc.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace zproc::server_detail {

namespace {

constexpr std::size_t header = 8;  // u32 length + u32 crc32
constexpr std::uint32_t max_record = 256u * 1024u * 1024u;

// The snapshot's header: magic, format, crc32 of the payload, payload length.
constexpr char snapshot_magic[8] = {'Z', 'P', 'R', 'O', 'C', 'S', 'N', 'P'};
constexpr std::size_t snapshot_header = 8 + 4 + 4 + 8;
constexpr std::uint32_t snapshot_format = 2;

[[noreturn]] void fail(const std::string& what) {
  throw zproc::error(error_code(errno, boost::system::system_category()), what + ": " + std::strerror(errno));
}

error_code damaged() { return make_error_code(std::errc::illegal_byte_sequence); }

std::uint32_t crc32(const char* data, std::size_t n) {
  boost::crc_32_type crc;
  crc.process_bytes(data, n);
  return crc.checksum();
}

void put_u32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

std::uint32_t get_u32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}

void put_u64(std::string& out, std::uint64_t v) {
  put_u32(out, static_cast<std::uint32_t>(v >> 32));
  put_u32(out, static_cast<std::uint32_t>(v & 0xffffffffu));
}

std::uint64_t get_u64(const char* p) { return (std::uint64_t{get_u32(p)} << 32) | get_u32(p + 4); }

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      fail("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open " + dir);
  ::fsync(fd);
  ::close(fd);
}

/// Writes all of `bytes` to `fd` (retrying short writes and EINTR); `path` names it in errors.
void write_fully(int fd, std::string_view bytes, const std::string& path) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write " + path);
    off += static_cast<std::size_t>(n);
  }
}

/// Writes `bytes` as the whole file `path` and fsyncs it; `flags`: O_EXCL (a new file) or
/// O_TRUNC (replace). The descriptor is closed on every path.
void write_file_synced(const std::string& path, std::string_view bytes, int flags) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
  if (fd < 0) fail((flags & O_EXCL ? "create " : "open ") + path);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  write_fully(fd, bytes, path);
  if (::fsync(fd) != 0) fail("fsync " + path);
}

/// Applies a record's "after" values to a namespace (recovery).
void apply(namespace_state& ns, const update_record& r) {
  for (const auto& c : r.changes) {
    if (c.after) {
      ns.data[c.key] = *c.after;
      ns.modified[c.key] = r.revision;
    } else {
      ns.data.erase(c.key);
      ns.modified.erase(c.key);
    }
  }
  ns.revision = r.revision;
}

// ---- reading the log: one record at a time, no I/O --------------------------------------------

enum class record_state { ok, short_header, zero_length, past_eof, too_long, bad_checksum, unreadable };

struct record_read {
  record_state state = record_state::ok;
  std::size_t end = 0;  // where the record ends by its length field (when that is in the file)
  std::string ns;
  record_ptr rec;
};

/// The record at `pos` of `log` (pos < log.size()).
record_read read_record(std::string_view log, std::size_t pos) {
  record_read r;
  const std::size_t left = log.size() - pos;
  if (left < header) {
    r.state = record_state::short_header;
    return r;
  }
  const std::uint32_t len = get_u32(log.data() + pos);
  const std::uint32_t crc = get_u32(log.data() + pos + 4);
  if (len == 0) {
    r.state = record_state::zero_length;  // no record is empty (zeros, or a damaged header)
    r.end = pos + header;
    return r;
  }
  if (len > left - header) {
    r.state = record_state::past_eof;
    return r;
  }
  r.end = pos + header + len;
  if (len > max_record) {
    r.state = record_state::too_long;
    return r;
  }
  const char* payload = log.data() + pos + header;
  if (crc32(payload, len) != crc) {
    r.state = record_state::bad_checksum;
    return r;
  }
  try {
    const json entry = json::from_msgpack(payload, payload + len, true, false);
    if (entry.is_discarded() || !entry.is_object()) {
      r.state = record_state::unreadable;
      return r;
    }
    r.ns = entry.at("n").get<std::string>();
    r.rec = std::make_shared<update_record>(record_from_json(entry.at("r")));
  } catch (const json::exception&) {
    r.state = record_state::unreadable;
  }
  return r;
}

const char* describe(record_state s) {
  switch (s) {
    case record_state::ok: return "a valid record";
    case record_state::short_header: return "a record header cut short by the end of the file";
    case record_state::zero_length: return "a record of length 0";
    case record_state::past_eof: return "a record whose length runs past the end of the file";
    case record_state::too_long: return "a record longer than any the server writes";
    case record_state::bad_checksum: return "a record that fails its checksum";
    case record_state::unreadable: return "a record whose checksum holds but whose content is unreadable";
  }
  return "a bad record";
}

bool all_zero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

constexpr std::size_t not_found = std::string_view::npos;
constexpr std::size_t gave_up = not_found - 1;

/// The offset of the first valid record that starts after `pos`; not_found; or gave_up when
/// checking every offset would cost too much (a long tail of garbage, which is no torn write).
std::size_t next_valid(std::string_view log, std::size_t pos) {
  std::size_t budget = std::size_t{1} << 30;  // bytes checksummed
  for (std::size_t q = pos + 1; q + header < log.size(); ++q) {
    const std::uint32_t len = get_u32(log.data() + q);
    if (len == 0 || len > log.size() - q - header) continue;
    if (len > budget) return gave_up;
    budget -= len;
    if (crc32(log.data() + q + header, len) != get_u32(log.data() + q + 4)) continue;
    if (read_record(log, q).state == record_state::ok) return q;
  }
  return not_found;
}

/// Whether the bad record `r` at `pos` is what a write cut short by a crash leaves: nothing
/// valid after it, and a partial record, or a last record failing its checksum, or zeros to the
/// end (blocks the file system allocated but never wrote).
bool torn_tail(std::string_view log, std::size_t pos, const record_read& r) {
  switch (r.state) {
    case record_state::short_header:
    case record_state::past_eof:
      break;
    case record_state::zero_length:
      if (!all_zero(log.substr(pos))) return false;
      break;
    case record_state::bad_checksum:
      if (!all_zero(log.substr(r.end))) return false;
      break;
    default:
      return false;
  }
  return next_valid(log, pos) == not_found;
}

std::string in_quotes(const std::string& ns) { return "'" + ns + "'"; }

}  // namespace

journal::journal(std::string dir, server_config::fsync_policy policy,
                 std::chrono::milliseconds interval, std::size_t snapshot_every, bool repair)
    : dir_(std::move(dir)),
      policy_(policy),
      interval_(interval),
      snapshot_every_(std::max<std::size_t>(snapshot_every, 1)),
      repair_(repair),
      last_sync_(std::chrono::steady_clock::now()) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw zproc::error(ec, "cannot create the data directory " + dir_ + ": " + ec.message());
}

journal::~journal() {
  if (log_fd_ >= 0) {
    if (dirty_) ::fsync(log_fd_);
    ::close(log_fd_);
  }
}

std::string journal::corrupt_path(const std::string& base) const {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  const std::string first = dir_ + "/" + base + ".corrupt-" + stamp;
  std::string path = first;
  for (int n = 2; std::filesystem::exists(path); ++n) path = first + "-" + std::to_string(n);
  return path;
}

recovery_report journal::recover(store& s) {
  recovery_report report;
  load_snapshot(s, report);
  replay_log(s, report);
  report.namespaces = std::max(report.namespaces, s.namespace_count());
  appended_ = report.replayed;
  return report;
}

void journal::load_snapshot(store& s, recovery_report& report) {
  const std::string path = dir_ + "/snapshot";
  if (!std::filesystem::exists(path)) return;
  const std::string bytes = read_file(path);

  // Check everything before touching the store: a damaged snapshot restores nothing.
  json snap;
  std::size_t at = 0;  // where the damage is
  std::string damage;
  std::size_t payload_at = 0;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  if (bytes.size() >= sizeof snapshot_magic &&
      std::memcmp(bytes.data(), snapshot_magic, sizeof snapshot_magic) == 0) {
    payload_at = snapshot_header;
    if (bytes.size() < snapshot_header) {
      at = bytes.size();
      damage = "its header is cut short";
    } else if (const std::uint32_t format = get_u32(bytes.data() + 8); format != snapshot_format) {
      at = 8;
      damage = "unknown format " + std::to_string(format);
    } else if (const std::uint64_t len = get_u64(bytes.data() + 16);
               len != bytes.size() - snapshot_header) {
      at = 16;
      damage = "its header says " + std::to_string(len) + " bytes follow, the file holds " +
               std::to_string(bytes.size() - snapshot_header);
    } else if (crc32(bytes.data() + snapshot_header, len) != get_u32(bytes.data() + 12)) {
      at = snapshot_header;
      damage = "the bytes from offset " + std::to_string(snapshot_header) +
               " to the end fail their checksum";
    } else {
      snap = json::from_msgpack(bytes.begin() + snapshot_header, bytes.end(), true, false);
      if (snap.is_discarded() || !snap.is_object() || snap.value("format", 0) != 2) {
        at = snapshot_header;
        damage = "its checksum holds but its content is unreadable";
      }
    }
  } else if (!bytes.empty() && ((byte(0) & 0xf0) == 0x80 || byte(0) == 0xde || byte(0) == 0xdf)) {
    // Format 1 (before checksums): the bare MessagePack map.
    snap = json::from_msgpack(bytes, true, false);
    if (snap.is_discarded() || !snap.is_object() || snap.value("format", 0) != 1)
      damage = "neither a ZPROCSNP header nor a readable format 1 snapshot";
  } else {
    damage = "no ZPROCSNP header";
  }

  struct loaded_namespace {
    std::string name;
    json data;
    std::uint64_t revision = 0;
    std::unordered_map<std::string, std::uint64_t> modified;
    std::vector<record_ptr> records;
  };
  std::vector<loaded_namespace> loaded;
  if (damage.empty()) {
    try {
      for (const auto& [name, ns_json] : snap.at("namespaces").items()) {
        loaded_namespace ns;
        ns.name = name;
        ns.data = ns_json.at("data");
        if (!ns.data.is_object()) throw std::invalid_argument("data is not an object");
        ns.revision = ns_json.at("rev").get<std::uint64_t>();
        if (auto mod = ns_json.find("mod"); mod != ns_json.end())
          for (const auto& [k, v] : mod->items()) ns.modified[k] = v.get<std::uint64_t>();
        for (const auto& r : ns_json.at("history"))
          ns.records.push_back(std::make_shared<update_record>(record_from_json(r)));
        loaded.push_back(std::move(ns));
      }
    } catch (const std::exception& e) {
      at = payload_at;
      damage = std::string("its content is unreadable: ") + e.what();
    }
  }

  if (!damage.empty()) {
    const std::string what = "the snapshot " + path + " is damaged at byte offset " +
                             std::to_string(at) + " (" + damage +
                             "); it holds the whole state, so no revision in it can be trusted "
                             "and there is no last good revision (the log continues the "
                             "snapshot and is no use without it)";
    if (!repair_)
      throw zproc::error(damaged(),
                         what + ". The server did not start and changed nothing on disk. To "
                                "start anyway, run 'zproc server --data-dir " + dir_ +
                             " --repair' (server_config::repair): it moves the snapshot to " +
                             dir_ + "/snapshot.corrupt-<time> and the log to " + dir_ +
                             "/log.corrupt-<time>, and starts empty, revisions from 1");
    const std::string snap_aside = corrupt_path("snapshot");
    if (::rename(path.c_str(), snap_aside.c_str()) != 0) fail("rename " + path);
    std::string log_note;
    const std::string log_path = dir_ + "/log";
    if (std::filesystem::exists(log_path)) {
      const std::string log_aside = corrupt_path("log");
      if (::rename(log_path.c_str(), log_aside.c_str()) != 0) fail("rename " + log_path);
      log_note = " and the log to " + log_aside;
    }
    fsync_dir(dir_);
    report.notes.push_back("repaired: " + what + "; moved the snapshot to " + snap_aside +
                           log_note + "; starting empty, revisions from 1");
    return;
  }

  for (auto& l : loaded) {
    namespace_state& ns = s.restore(l.name);
    ns.data = std::move(l.data);
    ns.revision = l.revision;
    ns.modified = std::move(l.modified);
    ns.hist.reset(l.records.empty() ? ns.revision + 1 : l.records.front()->revision);
    for (auto& r : l.records) s.append_history(ns, std::move(r));
    ++report.namespaces;
  }
  snapshot_loaded_ = true;
}

void journal::replay_log(store& s, recovery_report& report) {
  const std::string path = dir_ + "/log";
  log_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd_ < 0) fail("open " + path);
  const std::string log = read_file(path);

  std::unordered_map<std::string, std::uint64_t> last_in_log;  // per namespace
  std::string last_good;  // the last good record: "41 (namespace 't')"
  std::string damage;     // what is wrong at `pos` (empty: nothing, or a torn tail)
  std::size_t pos = 0;
  while (pos < log.size()) {
    record_read r = read_record(log, pos);
    if (r.state != record_state::ok) {
      if (!torn_tail(log, pos, r)) {
        damage = describe(r.state);
        if (const std::size_t next = next_valid(log, pos); next == gave_up)
          damage += ", with more bytes after it than a torn last write leaves";
        else if (next != not_found)
          damage += ", with a valid record after it at offset " + std::to_string(next) +
                    ": not a torn last write";
      }
      break;
    }
    // Revisions run on by one per namespace; the first record of a namespace may be one the
    // snapshot already holds (a crash between writing a snapshot and emptying the log).
    const std::uint64_t rev = r.rec->revision;
    const namespace_state* existing = s.find(r.ns);
    const std::uint64_t current = existing ? existing->revision : 0;
    if (auto seen = last_in_log.find(r.ns); seen != last_in_log.end()) {
      if (rev != seen->second + 1)
        damage = std::string("the revision ") + (rev <= seen->second ? "goes back" : "skips") +
                 " from " + std::to_string(seen->second) + " to " + std::to_string(rev) +
                 " in namespace " + in_quotes(r.ns);
    } else if (rev == 0 || rev > current + 1) {
      damage = "the revision skips from " + std::to_string(current) + " to " +
               std::to_string(rev) + " in namespace " + in_quotes(r.ns);
    }
    if (!damage.empty()) break;
    last_in_log[r.ns] = rev;
    if (rev > current) {
      namespace_state& ns = s.restore(r.ns);
      apply(ns, *r.rec);
      s.append_history(ns, std::move(r.rec));
      ++report.replayed;
    }
    last_good = std::to_string(rev) + " (namespace " + in_quotes(r.ns) + ")";
    pos = r.end;
  }
  if (pos == log.size()) return;

  const std::string good =
      "last good revision: " +
      (!last_good.empty() ? last_good
                          : std::string(snapshot_loaded_ ? "none in the log (the snapshot's state)"
                                                         : "none (no good record before it)"));
  const std::string rest = std::to_string(log.size() - pos) + " bytes";
  if (damage.empty()) {  // a torn last write: drop it quietly (one line)
    report.dropped_bytes = log.size() - pos;
    report.notes.push_back("dropped a torn last write: the " + rest + " from byte offset " +
                           std::to_string(pos) + " of " + path + " (" + good + ")");
    if (::ftruncate(log_fd_, static_cast<off_t>(pos)) != 0) fail("truncate " + path);
    ::fsync(log_fd_);
    return;
  }
  const std::string what = "the log " + path + " is damaged at byte offset " +
                           std::to_string(pos) + " (" + damage + "); " + good;
  if (!repair_)
    throw zproc::error(damaged(),
                       what + "; the " + rest + " from there on were not applied. The server did "
                              "not start and changed nothing on disk. To start from the good "
                              "part, run 'zproc server --data-dir " + dir_ +
                           " --repair' (server_config::repair): it keeps the first " +
                           std::to_string(pos) + " bytes and moves the rest to " + dir_ +
                           "/log.corrupt-<time>");
  const std::string aside = corrupt_path("log");
  write_file_synced(aside, std::string_view(log).substr(pos), O_EXCL);
  fsync_dir(dir_);
  if (::ftruncate(log_fd_, static_cast<off_t>(pos)) != 0) fail("truncate " + path);
  if (::fsync(log_fd_) != 0) fail("fsync " + path);
  report.notes.push_back("repaired: " + what + "; kept the first " + std::to_string(pos) +
                         " bytes, moved the other " + rest + " to " + aside +
                         "; writes continue from the last good revision + 1");
}

void journal::append(const std::string& ns, const update_record& r) {
  std::string payload;
  json::to_msgpack(json{{"n", ns}, {"r", to_json(r)}}, nlohmann::detail::output_adapter<char>(payload));
  std::string bytes;
  bytes.reserve(header + payload.size());
  put_u32(bytes, static_cast<std::uint32_t>(payload.size()));
  put_u32(bytes, crc32(payload.data(), payload.size()));
  bytes += payload;
  write_fully(log_fd_, bytes, dir_ + "/log");  // one write(): in the page cache now, so a killed server loses nothing
  ++appended_;
  dirty_ = true;
  if (policy_ == server_config::fsync_policy::always) {
    if (::fdatasync(log_fd_) != 0) fail("fdatasync " + dir_ + "/log");
    dirty_ = false;
  } else if (policy_ == server_config::fsync_policy::interval &&
             std::chrono::steady_clock::now() - last_sync_ >= interval_) {
    sync();
  }
}

void journal::sync() {
  if (!dirty_ || log_fd_ < 0) return;
  ::fdatasync(log_fd_);
  dirty_ = false;
  last_sync_ = std::chrono::steady_clock::now();
}

void journal::snapshot(const store& s) {
  json namespaces = json::object();
  s.for_each([&](const std::string& name, const namespace_state& ns) {
    json records = json::array();
    for (std::uint64_t r = ns.hist.oldest(); r <= ns.hist.newest(); ++r)
      if (const record_ptr* rec = ns.hist.find(r)) records.push_back(to_json(**rec));
    namespaces[name] = json{{"rev", ns.revision},
                            {"data", ns.data},
                            {"mod", ns.modified},
                            {"history", std::move(records)}};
  });
  std::string payload;
  json::to_msgpack(json{{"format", snapshot_format}, {"namespaces", std::move(namespaces)}},
                   nlohmann::detail::output_adapter<char>(payload));
  std::string bytes(snapshot_magic, sizeof snapshot_magic);
  bytes.reserve(snapshot_header + payload.size());
  put_u32(bytes, snapshot_format);
  put_u32(bytes, crc32(payload.data(), payload.size()));
  put_u64(bytes, payload.size());
  bytes += payload;
  const std::string tmp = dir_ + "/snapshot.tmp";
  write_file_synced(tmp, bytes, O_TRUNC);
  if (::rename(tmp.c_str(), (dir_ + "/snapshot").c_str()) != 0) fail("rename " + tmp);
  fsync_dir(dir_);
  // The snapshot holds everything the log held: start the log again. (A crash before this
  // truncation is harmless: replay skips records the snapshot already has.)
  if (::ftruncate(log_fd_, 0) != 0) fail("truncate " + dir_ + "/log");
  ::fsync(log_fd_);
  appended_ = 0;
  dirty_ = false;
}

}  // namespace zproc::server_detail
