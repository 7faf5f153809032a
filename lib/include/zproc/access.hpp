// zproc/access.hpp - who may use a server: tokens (shared secrets) and what each one may do.
//
// A client proves it knows a token in the hello (HMAC-SHA256 over a nonce of the server's and
// one of its own: the token never crosses the wire, a recorded hello does not work twice), and
// the server proves it knows it too. See docs/security.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zproc {

/// What a connection may do, given by the token it authenticated with.
struct access_role {
  enum class kind {
    /// Everything, on every namespace; may cancel any task and change any process record.
    admin,
    /// Reads and writes the namespaces it is given (all if none), runs processes and submits
    /// tasks; cancels only its own tasks, changes only its own process records.
    read_write,
    /// Reads and watches the namespaces it is given (all if none); nothing else.
    read_only,
    /// Takes and completes the tasks of one swarm (`swarm`); reads no state, submits nothing.
    worker,
  };
  kind what = kind::admin;
  /// read_write, read_only: the namespaces it may use; empty: all.
  std::vector<std::string> namespaces;
  /// worker: the swarm whose tasks it may take.
  std::string swarm = "default";

  /// "admin", "read-write", "read-only", "worker".
  static std::string_view name(kind k) noexcept;
  /// Reads a role as written in an access file or on the command line: `admin`, `read-write`,
  /// `read-only`, `worker`, each optionally followed by `:A,B` (namespaces; for a worker: the
  /// swarm). Throws zproc::error (std::errc::invalid_argument) naming what is wrong.
  static access_role parse(std::string_view text);
  /// The inverse of parse().
  std::string to_string() const;
};

/// A secret a server accepts, and what a connection that proves it knows it may do.
struct access_token {
  std::string secret;
  access_role role;
};

/// Tokens are at least this long (bytes); generate_token() makes 64 hex digits (32 random bytes).
inline constexpr std::size_t min_token_size = 16;

/// A new random token: 64 hex digits from the system's random source.
std::string generate_token();

/// The token in a file: its first line without surrounding whitespace. Throws zproc::error
/// naming the file when it cannot be read, when the token is shorter than min_token_size, or
/// when the file may be read by other users than its owner (chmod 600, as ssh asks for keys).
std::string read_token_file(const std::string& path);
/// Writes a new token to `path` (mode 0600, created with its directory if missing) and
/// returns it; throws zproc::error if the file cannot be written or already exists.
std::string write_new_token_file(const std::string& path);

/// The token of a client that was given none: the environment variable ZPROC_TOKEN, else the
/// file that ZPROC_TOKEN_FILE names (read_token_file), else empty (no token).
inline constexpr const char* token_env = "ZPROC_TOKEN";
inline constexpr const char* token_file_env = "ZPROC_TOKEN_FILE";
std::string token_from_env();

/// An access file: one token per line, `SECRET ROLE` (role as in access_role::parse; `admin`
/// if left out); blank lines and lines starting with '#' are skipped. The same permission
/// rule as read_token_file. Throws zproc::error naming the file and the line.
std::vector<access_token> read_access_file(const std::string& path);

}  // namespace zproc
