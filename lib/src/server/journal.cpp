#include "server/journal.hpp"

#include "protocol/msgpack.hpp"
#include "protocol/records.hpp"

#include <boost/crc.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <optional>
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
constexpr std::uint32_t snapshot_format = 3;
// One snapshot step writes about this much: bounded work between two requests.
constexpr std::size_t step_keys = 256;
constexpr std::size_t step_bytes = 64 * 1024;
constexpr std::size_t max_item = 1u << 31;  // a snapshot item's length field (u32) must fit

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

// ---- writing a snapshot's items (format 3) ----------------------------------------------------

void put_msgpack_str(std::string& out, std::string_view s) {
  const std::size_t n = s.size();
  if (n < 32) {
    out.push_back(static_cast<char>(0xa0 | n));
  } else if (n < 256) {
    out.push_back(static_cast<char>(0xd9));
    out.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    out.push_back(static_cast<char>(0xda));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(0xdb));
    put_u32(out, static_cast<std::uint32_t>(n));
  }
  out.append(s);
}

void put_msgpack_uint(std::string& out, std::uint64_t v) {
  if (v < 128) {
    out.push_back(static_cast<char>(v));
  } else {
    out.push_back(static_cast<char>(0xcf));
    put_u64(out, v);
  }
}

void patch_u32(std::string& out, std::size_t at, std::uint32_t v) {
  std::string bytes;
  put_u32(bytes, v);
  out.replace(at, 4, bytes);
}

/// Appends `item` as [u32 length][MessagePack].
void put_item(std::string& out, const json& item) {
  const std::size_t at = out.size();
  out.append(4, '\0');
  protocol::append_msgpack(out, item);
  patch_u32(out, at, static_cast<std::uint32_t>(out.size() - at - 4));
}

/// fsync + rename of a written snapshot, and the old log removed: what makes it durable. Runs on
/// the snapshot's own thread; touches only these files. Closes `fd`.
void make_durable(int fd, const std::string& dir) {
  const std::string tmp = dir + "/snapshot.tmp";
  {
    struct closer {
      int fd;
      ~closer() { ::close(fd); }
    } guard{fd};
    if (::fsync(fd) != 0) fail("fsync " + tmp);
  }
  if (::rename(tmp.c_str(), (dir + "/snapshot").c_str()) != 0) fail("rename " + tmp);
  fsync_dir(dir);
  // The snapshot holds everything DIR/log.old held. (If this unlink is lost to a crash, recovery
  // skips those records, and the next snapshot removes the file.)
  if (::unlink((dir + "/log.old").c_str()) != 0 && errno != ENOENT) fail("unlink " + dir + "/log.old");
}

/// Reads a file at offsets (pread), for the snapshot's streaming load.
struct file_reader {
  int fd;
  std::string path;
  /// false at the end of the file before `n` bytes came
  bool read(char* p, std::size_t n, std::uint64_t at) {
    while (n > 0) {
      const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(at));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("read " + path);
      if (r == 0) return false;
      p += r;
      at += static_cast<std::uint64_t>(r);
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
};

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

/// A snapshot in progress (format 3): what was frozen when it began, and where it stands.
struct journal::snapshot_job {
  struct frozen_namespace {
    std::string name;
    std::uint64_t revision = 0;       // R: the log's records after it make the data exact
    std::vector<record_ptr> history;  // up to R (immutable records: pointers suffice)
  };
  enum class phase { ns_header, history, data, end, syncing };

  std::vector<frozen_namespace> namespaces;
  std::size_t ns_index = 0;
  phase at = phase::ns_header;
  std::size_t hist_index = 0;
  bool record_begun = false;     // the record at hist_index: its head is written
  std::size_t change_index = 0;  // and this many of its changes
  std::optional<std::string> last_key;  // the data written so far ends with this key
  int fd = -1;                          // DIR/snapshot.tmp
  std::uint64_t length = 0;             // payload bytes written
  boost::crc_32_type crc;               // of the payload written
  std::thread durable;                  // fsync + rename (phase::syncing)
  std::atomic<bool> done{false};        // set by `durable` when it is through
  std::string error;                    // what failed there (read after `done`)
};

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
  if (snap_) {
    // Written, being made durable: let it finish. Still being written: drop it (DIR/log.old
    // and DIR/log hold everything; recovery replays both).
    if (snap_->durable.joinable()) snap_->durable.join();
    if (snap_->fd >= 0) {
      ::close(snap_->fd);
      ::unlink((dir_ + "/snapshot.tmp").c_str());
    }
  }
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

/// Where replaying the logs stands, carried from DIR/log.old on to DIR/log.
struct journal::replay_cursor {
  std::unordered_map<std::string, std::uint64_t> last_in_log;  // per namespace
  std::string last_good;  // the last good record: "41 (namespace 't')"
};

recovery_report journal::recover(const store_set& s) {
  recovery_report report;
  // A snapshot.tmp is one that did not finish (the server stopped or crashed while writing it).
  std::error_code ignored;
  std::filesystem::remove(dir_ + "/snapshot.tmp", ignored);
  load_snapshot(s, report);
  replay_cursor cursor;
  if (std::filesystem::exists(dir_ + "/log.old")) replay_log(s, report, "log.old", cursor);
  replay_log(s, report, "log", cursor);
  report.namespaces = std::max(report.namespaces, s.namespace_count());
  appended_ = report.replayed;
  return report;
}

namespace {

struct loaded_namespace {
  std::string name;
  json data = json::object();
  std::uint64_t revision = 0;
  std::unordered_map<std::string, std::uint64_t> modified;
  std::vector<std::shared_ptr<update_record>> records;  // (format 3: changes come in pieces)
};

/// What a snapshot file holds, or where and how it is damaged.
struct loaded_snapshot {
  std::vector<loaded_namespace> namespaces;
  std::string damage;  // empty: fine
  std::size_t at = 0;  // where the damage is
};

/// Formats 1 and 2: one MessagePack value (the whole file in memory).
void parse_whole(const std::string& bytes, loaded_snapshot& out) {
  json snap;
  std::size_t payload_at = 0;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  if (bytes.size() >= sizeof snapshot_magic &&
      std::memcmp(bytes.data(), snapshot_magic, sizeof snapshot_magic) == 0) {
    payload_at = snapshot_header;
    if (bytes.size() < snapshot_header) {
      out.at = bytes.size();
      out.damage = "its header is cut short";
    } else if (const std::uint32_t format = get_u32(bytes.data() + 8); format != 2) {
      out.at = 8;
      out.damage = "unknown format " + std::to_string(format);
    } else if (const std::uint64_t len = get_u64(bytes.data() + 16);
               len != bytes.size() - snapshot_header) {
      out.at = 16;
      out.damage = "its header says " + std::to_string(len) + " bytes follow, the file holds " +
                   std::to_string(bytes.size() - snapshot_header);
    } else if (crc32(bytes.data() + snapshot_header, len) != get_u32(bytes.data() + 12)) {
      out.at = snapshot_header;
      out.damage = "the bytes from offset " + std::to_string(snapshot_header) +
                   " to the end fail their checksum";
    } else {
      snap = json::from_msgpack(bytes.begin() + snapshot_header, bytes.end(), true, false);
      if (snap.is_discarded() || !snap.is_object() || snap.value("format", 0) != 2) {
        out.at = snapshot_header;
        out.damage = "its checksum holds but its content is unreadable";
      }
    }
  } else if (!bytes.empty() && ((byte(0) & 0xf0) == 0x80 || byte(0) == 0xde || byte(0) == 0xdf)) {
    // Format 1 (before checksums): the bare MessagePack map.
    snap = json::from_msgpack(bytes, true, false);
    if (snap.is_discarded() || !snap.is_object() || snap.value("format", 0) != 1)
      out.damage = "neither a ZPROCSNP header nor a readable format 1 snapshot";
  } else {
    out.damage = "no ZPROCSNP header";
  }
  if (!out.damage.empty()) return;
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
      out.namespaces.push_back(std::move(ns));
    }
  } catch (const std::exception& e) {
    out.namespaces.clear();
    out.at = payload_at;
    out.damage = std::string("its content is unreadable: ") + e.what();
  }
}

/// Format 3: checks the header and the checksum (one pass over the file, 1 MiB at a time), then
/// reads the items one by one. Memory: the restored state plus one item.
void parse_stream(file_reader& in, std::uint64_t file_size, const char* head, loaded_snapshot& out) {
  const std::uint64_t len = get_u64(head + 16);
  if (len != file_size - snapshot_header) {
    out.at = 16;
    out.damage = "its header says " + std::to_string(len) + " bytes follow, the file holds " +
                 std::to_string(file_size - snapshot_header);
    return;
  }
  {
    boost::crc_32_type crc;
    std::string block(std::size_t{1} << 20, '\0');
    for (std::uint64_t at = snapshot_header; at < file_size;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), file_size - at));
      if (!in.read(block.data(), n, at)) break;
      crc.process_bytes(block.data(), n);
      at += n;
    }
    if (crc.checksum() != get_u32(head + 12)) {
      out.at = snapshot_header;
      out.damage = "the bytes from offset " + std::to_string(snapshot_header) +
                   " to the end fail their checksum";
      return;
    }
  }
  std::uint64_t at = snapshot_header;
  std::string item;
  bool begun = false, ended = false;
  try {
    while (at < file_size) {
      if (ended) throw std::invalid_argument("bytes after the end marker");
      char len_bytes[4];
      if (file_size - at < 4 || !in.read(len_bytes, 4, at))
        throw std::invalid_argument("an item header cut short");
      const std::uint32_t n = get_u32(len_bytes);
      if (n > file_size - at - 4) throw std::invalid_argument("an item runs past the end");
      item.resize(n);
      if (!in.read(item.data(), n, at + 4)) throw std::invalid_argument("an item cut short");
      out.at = at;
      json j = json::from_msgpack(item, true, false);
      if (j.is_discarded() || !j.is_object()) throw std::invalid_argument("an item is not a map");
      if (!begun) {
        if (j.value("format", 0) != 3) throw std::invalid_argument("no format 3 item first");
        begun = true;
      } else if (auto d = j.find("d"); d != j.end()) {
        if (out.namespaces.empty()) throw std::invalid_argument("data before a namespace");
        loaded_namespace& ns = out.namespaces.back();
        auto& obj = ns.data.get_ref<json::object_t&>();
        for (auto& entry : *d) {
          auto& key = entry.at(0).get_ref<const std::string&>();
          ns.modified.emplace(key, entry.at(2).get<std::uint64_t>());
          obj.emplace_hint(obj.end(), key, std::move(entry.at(1)));
        }
      } else if (auto hr = j.find("hr"); hr != j.end()) {
        if (out.namespaces.empty()) throw std::invalid_argument("history before a namespace");
        out.namespaces.back().records.push_back(
            std::make_shared<update_record>(record_from_json(*hr)));
      } else if (auto hc = j.find("hc"); hc != j.end()) {
        if (out.namespaces.empty() || out.namespaces.back().records.empty())
          throw std::invalid_argument("changes before their record");
        auto& changes = out.namespaces.back().records.back()->changes;
        for (const auto& c : *hc) changes.push_back(protocol::change_from_wire(c));
      } else if (auto ns = j.find("ns"); ns != j.end()) {
        loaded_namespace l;
        l.name = ns->get<std::string>();
        l.revision = j.at("rev").get<std::uint64_t>();
        out.namespaces.push_back(std::move(l));
      } else if (auto e = j.find("end"); e != j.end()) {
        if (e->get<std::size_t>() != out.namespaces.size())
          throw std::invalid_argument("the end marker counts other namespaces");
        ended = true;
      } else {
        throw std::invalid_argument("an unknown item");
      }
      at += 4 + std::uint64_t{n};
    }
    if (!ended) {
      out.at = at;
      throw std::invalid_argument("no end marker");
    }
  } catch (const std::exception& e) {
    out.namespaces.clear();
    out.damage = std::string("its checksum holds but its content is unreadable: ") + e.what();
  }
}

}  // namespace

void journal::load_snapshot(const store_set& s, recovery_report& report) {
  const std::string path = dir_ + "/snapshot";
  if (!std::filesystem::exists(path)) return;

  // Check everything before touching the store: a damaged snapshot restores nothing.
  loaded_snapshot loaded;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open " + path);
    struct closer {
      int fd;
      ~closer() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail("stat " + path);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    file_reader in{fd, path};
    char head[snapshot_header];
    if (size >= snapshot_header && in.read(head, snapshot_header, 0) &&
        std::memcmp(head, snapshot_magic, sizeof snapshot_magic) == 0 &&
        get_u32(head + 8) == snapshot_format) {
      parse_stream(in, size, head, loaded);
    } else {
      parse_whole(read_file(path), loaded);
    }
  }

  if (!loaded.damage.empty()) {
    const std::string what = "the snapshot " + path + " is damaged at byte offset " +
                             std::to_string(loaded.at) + " (" + loaded.damage +
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
    for (const std::string name : {"log.old", "log"}) {
      const std::string log_path = dir_ + "/" + name;
      if (!std::filesystem::exists(log_path)) continue;
      const std::string log_aside = corrupt_path(name);
      if (::rename(log_path.c_str(), log_aside.c_str()) != 0) fail("rename " + log_path);
      log_note += " and the " + name + " to " + log_aside;
    }
    fsync_dir(dir_);
    report.repaired = true;
    report.notes.push_back("repaired: " + what + "; moved the snapshot to " + snap_aside +
                           log_note + "; starting empty, revisions from 1");
    return;
  }

  for (auto& l : loaded.namespaces) {
    namespace_state& ns = s.restore(l.name);
    ns.data = std::move(l.data);
    ns.revision = l.revision;
    ns.modified = std::move(l.modified);
    store& holder = s.of(l.name);
    holder.reset_history(ns, l.records.empty() ? ns.revision + 1 : l.records.front()->revision);
    for (auto& r : l.records) {
      r->bytes = record_bytes(*r);  // its changes came in pieces after its head
      holder.append_history(ns, std::move(r));
    }
    ++report.namespaces;
  }
  snapshot_loaded_ = true;
}

void journal::replay_log(const store_set& s, recovery_report& report, const std::string& name,
                         replay_cursor& cursor) {
  const std::string path = dir_ + "/" + name;
  // DIR/log stays open for appends; DIR/log.old only for cutting off a torn tail.
  const bool live = name == "log";
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (live ? O_CREAT | O_APPEND : 0), 0600);
  if (fd < 0) fail("open " + path);
  struct closer {
    int fd;
    bool keep;
    ~closer() {
      if (!keep) ::close(fd);
    }
  } guard{fd, live};
  if (live) log_fd_ = fd;
  const std::string log = read_file(path);

  auto& last_in_log = cursor.last_in_log;
  std::string& last_good = cursor.last_good;
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
    // Revisions run on by one per namespace, from DIR/log.old on into DIR/log; the first record
    // of a namespace may be one the snapshot already holds (a crash between a snapshot's rename
    // and the removal of DIR/log.old; a snapshot that began while DIR/log.old was there).
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
      s.of(r.ns).append_history(ns, std::move(r.rec));
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
    if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) fail("truncate " + path);
    ::fsync(fd);
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
                           std::to_string(pos) + " bytes and moves the rest to " + dir_ + "/" + name +
                           ".corrupt-<time>");
  const std::string aside = corrupt_path(name);
  write_file_synced(aside, std::string_view(log).substr(pos), O_EXCL);
  fsync_dir(dir_);
  if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) fail("truncate " + path);
  if (::fsync(fd) != 0) fail("fsync " + path);
  report.repaired = true;
  report.notes.push_back("repaired: " + what + "; kept the first " + std::to_string(pos) +
                         " bytes, moved the other " + rest + " to " + aside +
                         "; writes continue from the last good revision + 1");
}

bool journal::append(const std::string& ns, const update_record& r) {
  std::string payload;
  protocol::append_msgpack(payload, json{{"n", ns}, {"r", to_json(r)}});
  std::string bytes;
  bytes.reserve(header + payload.size());
  put_u32(bytes, static_cast<std::uint32_t>(payload.size()));
  put_u32(bytes, crc32(payload.data(), payload.size()));
  bytes += payload;
  std::uint64_t mine = 0;
  bool sync_now = policy_ == server_config::fsync_policy::always && !deferred_;
  bool due = false;
  {
    std::lock_guard lock(mutex_);  // (the shards of a server append from their threads)
    write_fully(log_fd_, bytes, dir_ + "/log");  // one write(): in the page cache now, so a killed server loses nothing
    ++appended_;
    mine = ++written_;
    dirty_ = true;
    if (policy_ == server_config::fsync_policy::interval) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_sync_ >= interval_) {
        last_sync_ = now;  // (this append syncs; the others that find it due meanwhile do not)
        sync_now = true;
      }
    }
    due = !snap_ && appended_ >= snapshot_every_;
  }
  // Outside the log's lock: the other shards write meanwhile, and the next sync covers them.
  // (The shard's own lock is held: its next write waits for this one to be durable.)
  if (sync_now) sync_through(mine);
  return due;
}

void journal::sync() {
  std::uint64_t upto = 0;
  {
    std::lock_guard lock(mutex_);
    if (!dirty_) return;
    upto = written_;
  }
  try {
    sync_through(upto);
  } catch (const std::exception& e) {
    // The interval policy's timer: the next tick tries again. The operator hears of it once
    // per failing spell (a disk that fails every second is not a note every second), and
    // again when a sync works (sync_through(), whoever calls it).
    std::lock_guard lock(mutex_);
    if (!std::exchange(sync_failing_, true)) {
      try {
        notes_.push_back(std::string("an fsync of the log failed: ") + e.what() +
                         "; writes since the last good one may not be on disk yet (tried "
                         "again every interval)");
      } catch (...) {  // out of memory for the note: the next failing spell says it
        sync_failing_ = false;
      }
    }
  }
}

void journal::sync_through(std::uint64_t seq) {
  std::lock_guard syncing(sync_mutex_);
  int fd = -1;
  std::uint64_t upto = 0;
  {
    std::lock_guard lock(mutex_);
    if (synced_ >= seq || log_fd_ < 0) return;  // a sync since this record covered it
    fd = log_fd_;
    upto = written_;  // everything written so far: this sync covers the records of every shard
  }
  if (::fdatasync(fd) != 0) fail("fdatasync " + dir_ + "/log");
  std::lock_guard lock(mutex_);
  if (synced_.load(std::memory_order_relaxed) < upto)
    synced_.store(upto, std::memory_order_release);
  if (sync_failing_) {
    try {
      notes_.push_back("the log's fsync works again: every write so far is on disk");
      sync_failing_ = false;
    } catch (...) {  // out of memory for the note: said by the next sync that works
    }
  }
  dirty_ = synced_.load(std::memory_order_relaxed) < written_.load(std::memory_order_relaxed);
  last_sync_ = std::chrono::steady_clock::now();
}

bool journal::snapshot_due() const {
  std::lock_guard lock(mutex_);
  return !snap_ && appended_ >= snapshot_every_;
}

bool journal::snapshot_running() const {
  std::lock_guard lock(mutex_);
  return snap_ != nullptr;
}

std::vector<std::string> journal::take_notes() {
  std::lock_guard lock(mutex_);
  return std::exchange(notes_, {});
}

void journal::begin_snapshot(const store_set& s) {
  std::lock_guard syncing(sync_mutex_);  // (no fdatasync of the log it may replace)
  std::lock_guard lock(mutex_);
  if (snap_) return;
  auto job = std::make_unique<snapshot_job>();
  s.for_each([&](const std::string& name, const namespace_state& ns) {
    snapshot_job::frozen_namespace f{name, ns.revision, {}};
    f.history.reserve(ns.hist.size());
    for (std::uint64_t r = ns.hist.oldest(); r <= ns.hist.newest(); ++r)
      if (const record_ptr* rec = ns.hist.find(r)) f.history.push_back(*rec);
    job->namespaces.push_back(std::move(f));
  });
  const std::string tmp = dir_ + "/snapshot.tmp";
  const std::string log = dir_ + "/log";
  const std::string old_log = dir_ + "/log.old";
  try {
    job->fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (job->fd < 0) fail("open " + tmp);
    // The header's checksum and length are patched in once everything is written.
    std::string head(snapshot_magic, sizeof snapshot_magic);
    put_u32(head, snapshot_format);
    put_u32(head, 0);
    put_u64(head, 0);
    write_fully(job->fd, head, tmp);
    std::string first;
    put_item(first, json{{"format", snapshot_format}, {"namespaces", job->namespaces.size()}});
    write_fully(job->fd, first, tmp);
    job->crc.process_bytes(first.data(), first.size());
    job->length = first.size();

    // A new log for the records after the revisions frozen above. If DIR/log.old is still
    // there (a snapshot that failed, or a crash during one), the log stays as it is: this
    // snapshot covers both, and its end removes DIR/log.old.
    if (!std::filesystem::exists(old_log)) {
      if (dirty_ && policy_ != server_config::fsync_policy::never) ::fdatasync(log_fd_);
      if (::rename(log.c_str(), old_log.c_str()) != 0) fail("rename " + log);
      const int fd = ::open(log.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0) {
        const int saved = errno;
        ::rename(old_log.c_str(), log.c_str());
        errno = saved;
        fail("open " + log);
      }
      ::close(log_fd_);
      log_fd_ = fd;
      synced_.store(written_.load(std::memory_order_relaxed),
                    std::memory_order_release);  // (the old log was synced above, unless never)
      dirty_ = false;
      if (policy_ != server_config::fsync_policy::never) fsync_dir(dir_);
    }
  } catch (const std::exception& e) {
    if (job->fd >= 0) ::close(job->fd);
    ::unlink(tmp.c_str());
    notes_.push_back(std::string("could not begin a snapshot: ") + e.what() +
                     "; the log keeps growing until one succeeds (the next try after " +
                     std::to_string(snapshot_every_) + " more updates)");
    appended_ = 0;
    return;
  }
  appended_ = 0;
  snap_ = std::move(job);
}

journal::snapshot_progress journal::snapshot_step(const store_set& s) {
  std::lock_guard lock(mutex_);
  return step_locked(s);
}

journal::snapshot_progress journal::snapshot_step(const store_set& s, std::size_t shard) {
  snapshot_job* job = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!snap_ || snap_->at == snapshot_job::phase::syncing) return step_locked(s);
    job = snap_.get();
  }
  // Between its begin and its end the job is the server strand's alone (the steps and
  // stop_now's finish both run there, and a begin needs no job in progress): its piece is built
  // and written without the journal's mutex, so that every shard goes on appending meanwhile.
  std::string error;
  bool ended = false;
  try {
    ended = write_piece(*job, s, shard);
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::lock_guard lock(mutex_);
  if (!error.empty()) {
    abandon_snapshot(error);
    return snapshot_progress::idle;
  }
  return ended ? start_durable_locked(*job) : snapshot_progress::more;
}

std::optional<std::size_t> journal::snapshot_shard(const store_set& s) const {
  std::lock_guard lock(mutex_);
  if (!snap_) return std::nullopt;
  const snapshot_job& j = *snap_;
  if (j.at == snapshot_job::phase::end || j.at == snapshot_job::phase::syncing ||
      j.ns_index >= j.namespaces.size())
    return std::nullopt;
  return s.shard_index(j.namespaces[j.ns_index].name);
}

bool journal::write_piece(snapshot_job& j, const store_set& s,
                          std::optional<std::size_t> only) const {
  using phase = snapshot_job::phase;
  std::string buf;
  std::size_t keys = 0;
  while (buf.size() < step_bytes && keys < step_keys && j.at != phase::end) {
    if (j.ns_index == j.namespaces.size()) {
      put_item(buf, json{{"end", j.namespaces.size()}});
      j.at = phase::end;
      break;
    }
    auto& f = j.namespaces[j.ns_index];
    // The next namespace is another shard's (whose lock the caller may not hold): the next
    // step takes it.
    if (only && j.at == phase::ns_header && s.shard_index(f.name) != *only) break;
    const namespace_state* ns = s.find(f.name);
    if (j.at == phase::ns_header) {
      put_item(buf, json{{"ns", f.name}, {"rev", f.revision}});
      j.at = phase::history;
      j.hist_index = 0;
      j.change_index = 0;
      j.record_begun = false;
    } else if (j.at == phase::history) {
      if (j.hist_index == f.history.size()) {
        std::vector<record_ptr>().swap(f.history);  // written: let the records go
        j.at = phase::data;
        j.last_key.reset();
        continue;
      }
      // A record in pieces: its head, then its changes ~1000 at a time (one update may have
      // changed a million keys).
      const update_record& r = *f.history[j.hist_index];
      if (!j.record_begun) {
        update_record head;  // the record without its changes
        head.revision = r.revision;
        head.time_us = r.time_us;
        head.client_id = r.client_id;
        head.handle = r.handle;
        head.identical = r.identical;
        put_item(buf, json{{"hr", to_json(head)}});
        j.record_begun = true;
        ++keys;
        if (keys >= step_keys || buf.size() >= step_bytes) continue;  // its changes next step
      }
      if (j.change_index < r.changes.size()) {
        const std::size_t item_at = buf.size();
        buf.append(4, '\0');
        buf.push_back(static_cast<char>(0x81));  // {"hc": [{"k", "b"?, "a"?}...]}
        put_msgpack_str(buf, "hc");
        buf.push_back(static_cast<char>(0xdd));
        const std::size_t count_at = buf.size();
        buf.append(4, '\0');
        std::uint32_t n = 0;
        for (; j.change_index < r.changes.size() && keys < step_keys && buf.size() < step_bytes;
             ++j.change_index, ++keys, ++n) {
          const key_change& c = r.changes[j.change_index];
          buf.push_back(static_cast<char>(0x80 | (1 + (c.before ? 1 : 0) + (c.after ? 1 : 0))));
          put_msgpack_str(buf, "k");
          put_msgpack_str(buf, c.key);
          if (c.before) {
            put_msgpack_str(buf, "b");
            protocol::append_msgpack(buf, *c.before);
          }
          if (c.after) {
            put_msgpack_str(buf, "a");
            protocol::append_msgpack(buf, *c.after);
          }
        }
        if (buf.size() - item_at > max_item) throw std::length_error("a value of over 2 GiB");
        patch_u32(buf, count_at, n);
        patch_u32(buf, item_at, static_cast<std::uint32_t>(buf.size() - item_at - 4));
      }
      if (j.change_index == r.changes.size()) {
        ++j.hist_index;
        j.change_index = 0;
        j.record_begun = false;
      }
    } else if (!ns || !ns->data.is_object()) {  // (namespaces are never removed)
      ++j.ns_index;
      j.at = phase::ns_header;
    } else {
      // The keys after the last one written, as they are now: a key added or removed since
      // is right or wrong here, and the log's records after f.revision put it right.
      const auto& obj = ns->data.get_ref<const json::object_t&>();
      auto it = j.last_key ? obj.upper_bound(*j.last_key) : obj.begin();
      if (it == obj.end()) {
        ++j.ns_index;
        j.at = phase::ns_header;
        continue;
      }
      const std::size_t item_at = buf.size();
      buf.append(4, '\0');
      buf.push_back(static_cast<char>(0x81));  // {"d": [[key, value, rev]...]}
      put_msgpack_str(buf, "d");
      buf.push_back(static_cast<char>(0xdd));
      const std::size_t count_at = buf.size();
      buf.append(4, '\0');
      std::uint32_t n = 0;
      for (; it != obj.end() && keys < step_keys && buf.size() < step_bytes; ++it, ++keys, ++n) {
        buf.push_back(static_cast<char>(0x93));
        put_msgpack_str(buf, it->first);
        protocol::append_msgpack(buf, it->second);
        put_msgpack_uint(buf, ns->modified_at(it->first));
      }
      if (buf.size() - item_at > max_item) throw std::length_error("a value of over 2 GiB");
      patch_u32(buf, count_at, n);
      patch_u32(buf, item_at, static_cast<std::uint32_t>(buf.size() - item_at - 4));
      j.last_key = std::prev(it)->first;
      if (it == obj.end()) {
        ++j.ns_index;
        j.at = phase::ns_header;
      }
    }
  }
  const std::string tmp = dir_ + "/snapshot.tmp";
  write_fully(j.fd, buf, tmp);
  j.crc.process_bytes(buf.data(), buf.size());
  j.length += buf.size();
  if (j.at != phase::end) return false;

  std::string patch;
  put_u32(patch, j.crc.checksum());
  put_u64(patch, j.length);
  if (::pwrite(j.fd, patch.data(), patch.size(), 12) != static_cast<ssize_t>(patch.size()))
    fail("write " + tmp);
  return true;
}

journal::snapshot_progress journal::step_locked(const store_set& s) {
  if (!snap_) return snapshot_progress::idle;
  snapshot_job& j = *snap_;
  using phase = snapshot_job::phase;
  if (j.at == phase::syncing) {
    if (!j.done.load(std::memory_order_acquire)) return snapshot_progress::syncing;
    if (j.durable.joinable()) j.durable.join();
    if (!j.error.empty()) {
      notes_.push_back("a snapshot failed: " + j.error + "; " + dir_ +
                       "/log.old and the log are kept, the next snapshot tries again");
      ::unlink((dir_ + "/snapshot.tmp").c_str());
    }
    snap_.reset();
    return snapshot_progress::idle;
  }
  try {
    if (!write_piece(j, s, std::nullopt)) return snapshot_progress::more;
  } catch (const std::exception& e) {
    abandon_snapshot(e.what());
    return snapshot_progress::idle;
  }
  return start_durable_locked(j);
}

journal::snapshot_progress journal::start_durable_locked(snapshot_job& j) {
  using phase = snapshot_job::phase;
  // fsync (seconds, for a big file on a slow disk) and rename off the strand: the thread owns the
  // descriptor from here on and reports through j.done; the strand polls it.
  j.at = phase::syncing;
  const int fd = std::exchange(j.fd, -1);
  try {
    j.durable = std::thread([&j, fd, dir = dir_] {
      try {
        make_durable(fd, dir);
      } catch (const std::exception& e) {
        j.error = e.what();
      }
      j.done.store(true, std::memory_order_release);
    });
  } catch (const std::system_error&) {  // no thread: do it here
    try {
      make_durable(fd, dir_);
    } catch (const std::exception& e) {
      j.error = e.what();
    }
    j.done.store(true, std::memory_order_release);
  }
  return snapshot_progress::syncing;
}

void journal::finish_snapshot(const store_set& s) {
  std::lock_guard lock(mutex_);
  while (snap_) {
    if (step_locked(s) == snapshot_progress::syncing && snap_->durable.joinable())
      snap_->durable.join();
  }
}

void journal::abandon_snapshot(const std::string& why) {
  if (!snap_) return;
  if (snap_->durable.joinable()) snap_->durable.join();
  if (snap_->fd >= 0) ::close(snap_->fd);
  ::unlink((dir_ + "/snapshot.tmp").c_str());
  snap_.reset();
  notes_.push_back("a snapshot failed: " + why + "; " + dir_ +
                   "/log.old and the log are kept, the next snapshot tries again");
}

}  // namespace zproc::server_detail
