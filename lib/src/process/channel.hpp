// What a parent and the process it spawned say to each other over the socket the child has
// as fd 3, without I/O: the ticket (what to run), then the child's reports (its value, its
// exception, or the raw dump of a fatal signal).
#pragma once

#include <zproc/json.hpp>
#include <zproc/tls.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zproc::process_detail {

/// The descriptor a spawned process finds its channel on.
constexpr int channel_fd = 3;
/// argv[1] of a spawned process.
constexpr std::string_view child_flag = "--zproc-child";

struct ticket {
  std::string address;
  /// The server's token (empty: none). Through the channel, not argv or the environment: it
  /// shows in no `ps` and no /proc/PID/environ.
  std::string token;
  tls_options tls;  ///< for a tls:// address
  std::string ns;
  std::string target;
  std::int64_t ppid = 0;
  /// The child asks the kernel to kill it when the thread that spawned it ends (it sets that
  /// itself: it is started by posix_spawn, which runs nothing between fork and exec).
  bool die_with_parent = true;
  std::size_t attempt = 1;
  std::vector<std::string> retry_types;  ///< exception types to retry for (mangled)
  std::string args;                      ///< packed arguments
};

std::string encode_ticket(const ticket& t);
/// Reads a whole ticket from `bytes`; nullopt if incomplete. Throws std::runtime_error if bad.
std::optional<ticket> decode_ticket(std::string_view bytes);

/// A fatal signal as the handler dumped it: raw frames in the child's address space, and the
/// child's loaded objects, to resolve them in another process (each maps them elsewhere).
struct signal_dump {
  int signo = 0;
  std::vector<std::uint64_t> frames;
  struct object {
    std::uint64_t begin = 0, end = 0, bias = 0;
    std::string path;
  };
  std::vector<object> objects;
};

/// An exception that escaped a target. The child sends the throw's raw frames and its loaded
/// objects (symbolising in a process that is about to exit would read the binary's debug info
/// for each one); the parent resolves them (resolve_remote), with its cached debug info.
struct exception_report {
  std::string type;
  std::string message;
  std::vector<std::string> frames;  ///< resolved: "function at file:line" (filled by the parent)
  bool retry = false;               ///< one of the ticket's retry types
  std::vector<std::uint64_t> raw_frames;      ///< the throw's frames, child's address space
  std::vector<signal_dump::object> objects;  ///< the child's loaded objects
};

/// Child → parent messages: one byte of kind, 4 bytes of length (big-endian), the payload.
enum class report_kind : char { value = 'R', exception = 'E', signal = 'S' };

std::string encode_value(const std::string& packed);
std::string encode_exception(const exception_report& e);
/// Signal-safe: writes into `out` (at most `cap` bytes), returns the length (0 if too small).
std::size_t encode_signal(int signo, const std::uint64_t* frames, std::size_t nframes,
                          const signal_dump::object* objects, std::size_t nobjects, char* out,
                          std::size_t cap) noexcept;

struct child_reports {
  std::optional<std::string> value;
  std::optional<exception_report> exception;
  std::optional<signal_dump> signal;
};
/// Everything the child sent (the whole stream, read to its end). Ignores a truncated tail.
child_reports decode_reports(std::string_view stream);

}  // namespace zproc::process_detail
