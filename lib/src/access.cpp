// Tokens and roles (zproc/access.hpp).
#include <zproc/access.hpp>

#include <zproc/error.hpp>
#include <zproc/tls.hpp>

#include "protocol/auth.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace zproc {

namespace {

constexpr std::array<std::string_view, 4> role_names = {"admin", "read-write", "read-only",
                                                        "worker"};

[[noreturn]] void fail(std::errc e, const std::string& what) {
  throw zproc::error(make_error_code(e), what);
}

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

/// The file's text, after checking that only its owner may read it.
std::string read_secret_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(static_cast<std::errc>(errno),
         "cannot read the token file " + path + ": " + std::strerror(errno));
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(std::errc::permission_denied,
         "the token file " + path + " may be read by other users (mode " + mode +
             "): make it readable by its owner only (chmod 600 " + path + ")");
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > 1024 * 1024) break;  // no secret is that long: not a token file
  }
  ::close(fd);
  return text;
}

void check_token(std::string_view token, const std::string& where) {
  if (token.size() < min_token_size)
    fail(std::errc::invalid_argument,
         where + ": a token has at least " + std::to_string(min_token_size) +
             " characters (zproc server writes one with --token-file PATH)");
  if (token.find_first_of(" \t\r\n") != std::string_view::npos)
    fail(std::errc::invalid_argument, where + ": a token has no spaces");
}

}  // namespace

std::string_view access_role::name(kind k) noexcept {
  return role_names[static_cast<std::size_t>(k)];
}

access_role access_role::parse(std::string_view text) {
  access_role r;
  const auto colon = text.find(':');
  const std::string_view head = text.substr(0, colon);
  bool known = false;
  for (std::size_t i = 0; i < role_names.size(); ++i)
    if (head == role_names[i]) {
      r.what = static_cast<kind>(i);
      known = true;
    }
  if (!known)
    fail(std::errc::invalid_argument,
         "unknown role '" + std::string(head) +
             "' (admin, read-write, read-only or worker, optionally followed by :NAMES)");
  if (colon == std::string_view::npos) return r;
  std::vector<std::string> names;
  std::string_view rest = text.substr(colon + 1);
  while (!rest.empty() || names.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    if (item.empty())
      fail(std::errc::invalid_argument, "role '" + std::string(text) + "' has an empty name");
    names.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  switch (r.what) {
    case kind::admin:
      fail(std::errc::invalid_argument, "the admin role takes no names (it may use everything)");
    case kind::worker:
      if (names.size() != 1)
        fail(std::errc::invalid_argument, "a worker serves one swarm: worker:NAME");
      r.swarm = names.front();
      break;
    default: r.namespaces = std::move(names);
  }
  return r;
}

std::string access_role::to_string() const {
  std::string out(name(what));
  if (what == kind::worker) return out + ":" + swarm;
  for (std::size_t i = 0; i < namespaces.size(); ++i) out += (i == 0 ? ":" : ",") + namespaces[i];
  return out;
}

tls_options tls_options_from_env() {
  const auto get = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  return {get(tls_ca_env), get(tls_cert_env), get(tls_key_env), get(tls_server_name_env)};
}

std::string generate_token() { return protocol::auth::random_hex(32); }

std::string read_token_file(const std::string& path) {
  const std::string text = read_secret_file(path);
  const std::string_view token = trim(std::string_view(text).substr(0, text.find('\n')));
  check_token(token, "the token file " + path);
  return std::string(token);
}

std::string write_new_token_file(const std::string& path) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) fail(std::errc::io_error, "cannot create " + p.parent_path().string() + ": " + ec.message());
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    fail(static_cast<std::errc>(errno),
         "cannot create the token file " + path + ": " + std::strerror(errno));
  const std::string token = generate_token();
  const std::string line = token + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    fail(std::errc::io_error, "cannot write the token file " + path);
  }
  return token;
}

std::string token_from_env() {
  if (const char* t = std::getenv(token_env); t && *t) {
    const std::string token(trim(t));
    check_token(token, std::string("$") + token_env);
    return token;
  }
  if (const char* f = std::getenv(token_file_env); f && *f) return read_token_file(f);
  return {};
}

std::vector<access_token> read_access_file(const std::string& path) {
  std::istringstream in(read_secret_file(path));
  std::vector<access_token> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string_view l = trim(line);
    if (l.empty() || l.front() == '#') continue;
    const std::string where = path + ":" + std::to_string(number);
    const auto space = l.find_first_of(" \t");
    access_token t;
    t.secret = std::string(l.substr(0, space));
    check_token(t.secret, where);
    if (space != std::string_view::npos) {
      const std::string_view role = trim(l.substr(space));
      try {
        t.role = access_role::parse(role);
      } catch (const zproc::error& e) {
        fail(std::errc::invalid_argument, where + ": " + e.diagnostics());
      }
    }
    out.push_back(std::move(t));
  }
  if (out.empty()) fail(std::errc::invalid_argument, "the access file " + path + " has no token");
  return out;
}

}  // namespace zproc
