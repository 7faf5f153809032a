// Where an embedded server's Unix socket lives when the program names none: a private
// directory of this user's (mode 0700, made by mkdtemp, so nobody can guess or squat the path),
// under $XDG_RUNTIME_DIR when it is a directory of this user's, else under the temporary
// directory. The directory is named zproc-PID-XXXXXX after the process that made it: the next
// embedded server of this user removes those whose process is gone (a program killed by
// SIGKILL or SIGTERM cannot clean up after itself).
#pragma once

#include <string>

namespace zproc::server_detail {

class runtime_dir {
 public:
  /// Creates a fresh private directory (after removing stale ones). Throws zproc::error.
  runtime_dir();
  ~runtime_dir();  ///< removes the socket file and the directory
  runtime_dir(const runtime_dir&) = delete;
  runtime_dir& operator=(const runtime_dir&) = delete;

  const std::string& path() const noexcept { return path_; }
  /// The address of a socket in it: ipc://DIR/server.sock
  std::string socket_address() const;

  /// The parent the directories are made in ($XDG_RUNTIME_DIR or the temporary directory).
  static std::string base();
  /// Removes this user's zproc-PID-* directories under `base` whose process is gone; returns
  /// how many it removed.
  static std::size_t remove_stale(const std::string& base);

 private:
  std::string path_;
};

}  // namespace zproc::server_detail
