#include "server/journal.hpp"

#include <boost/crc.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace zproc::server_detail {

namespace {

constexpr std::size_t header = 8;  // u32 length + u32 crc32
constexpr std::uint32_t max_record = 256u * 1024u * 1024u;

[[noreturn]] void fail(const std::string& what) {
  throw zproc::error(error_code(errno, boost::system::system_category()), what + ": " + std::strerror(errno));
}

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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open " + dir);
  ::fsync(fd);
  ::close(fd);
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

}  // namespace

journal::journal(std::string dir, server_config::fsync_policy policy,
                 std::chrono::milliseconds interval, std::size_t snapshot_every)
    : dir_(std::move(dir)),
      policy_(policy),
      interval_(interval),
      snapshot_every_(std::max<std::size_t>(snapshot_every, 1)),
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

recovery_report journal::recover(store& s) {
  recovery_report report;
  const std::string snap_path = dir_ + "/snapshot";
  const std::string log_path = dir_ + "/log";

  if (std::filesystem::exists(snap_path)) {
    const std::string bytes = read_file(snap_path);
    const json snap = json::from_msgpack(bytes, true, false);
    if (snap.is_discarded() || snap.value("format", 0) != 1)
      throw zproc::error(make_error_code(std::errc::illegal_byte_sequence),
                         "the snapshot in " + dir_ + " is unreadable");
    for (const auto& [name, ns_json] : snap.at("namespaces").items()) {
      namespace_state& ns = s.restore(name);
      ns.data = ns_json.at("data");
      ns.revision = ns_json.at("rev").get<std::uint64_t>();
      if (auto mod = ns_json.find("mod"); mod != ns_json.end())
        for (const auto& [k, v] : mod->items()) ns.modified[k] = v.get<std::uint64_t>();
      const auto& records = ns_json.at("history");
      const std::uint64_t first =
          records.empty() ? ns.revision + 1 : records.front().at("rv").get<std::uint64_t>();
      ns.hist.reset(first);
      for (const auto& r : records) {
        auto rec = std::make_shared<update_record>(record_from_json(r));
        ns.hist.append(std::move(rec));
      }
      ++report.namespaces;
    }
  }

  // Replay the log; cut it at the first torn record.
  log_fd_ = ::open(log_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd_ < 0) fail("open " + log_path);
  const std::string log = read_file(log_path);
  std::size_t pos = 0;
  while (pos + header <= log.size()) {
    const std::uint32_t len = get_u32(log.data() + pos);
    const std::uint32_t crc = get_u32(log.data() + pos + 4);
    if (len > max_record || pos + header + len > log.size()) break;
    const char* payload = log.data() + pos + header;
    if (crc32(payload, len) != crc) break;
    const json entry = json::from_msgpack(payload, payload + len, true, false);
    if (entry.is_discarded()) break;
    auto rec = std::make_shared<update_record>(record_from_json(entry.at("r")));
    namespace_state& ns = s.restore(entry.at("n").get<std::string>());
    if (rec->revision > ns.revision) {
      if (rec->revision != ns.revision + 1)
        throw zproc::error(make_error_code(std::errc::illegal_byte_sequence),
                           "the log in " + dir_ + " skips from revision " +
                               std::to_string(ns.revision) + " to " +
                               std::to_string(rec->revision));
      apply(ns, *rec);
      ns.hist.append(std::move(rec));
      ++report.replayed;
    }
    pos += header + len;
  }
  if (pos < log.size()) {
    report.dropped_bytes = log.size() - pos;
    if (::ftruncate(log_fd_, static_cast<off_t>(pos)) != 0) fail("truncate " + log_path);
    ::fsync(log_fd_);
  }
  report.namespaces = std::max(report.namespaces, s.namespace_count());
  appended_ = report.replayed;
  return report;
}

void journal::write_all(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(log_fd_, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write " + dir_ + "/log");
    }
    off += static_cast<std::size_t>(n);
  }
}

void journal::append(const std::string& ns, const update_record& r) {
  std::string payload;
  json::to_msgpack(json{{"n", ns}, {"r", to_json(r)}}, nlohmann::detail::output_adapter<char>(payload));
  std::string bytes;
  bytes.reserve(header + payload.size());
  put_u32(bytes, static_cast<std::uint32_t>(payload.size()));
  put_u32(bytes, crc32(payload.data(), payload.size()));
  bytes += payload;
  write_all(bytes);  // one write(): in the page cache now, so a killed server loses nothing
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
  std::string bytes;
  json::to_msgpack(json{{"format", 1}, {"namespaces", std::move(namespaces)}},
                   nlohmann::detail::output_adapter<char>(bytes));
  const std::string tmp = dir_ + "/snapshot.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("open " + tmp);
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      fail("write " + tmp);
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync " + tmp);
  ::close(fd);
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
