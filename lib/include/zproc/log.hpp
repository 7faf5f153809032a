// Where the library's messages go: crash reports, cleanup lines, workers' notes, the server's
// notes. By default to stderr as "[zproc] <message>"; an application routes them to its own
// log (or silences them) with set_log_handler(), and picks how much it hears with
// set_log_level() or the environment variable ZPROC_LOG_LEVEL (trace, debug, info, warning,
// error, off; read once, at the first message).
//
// One exception: the lines a process writes while it dies of a fatal signal (the cleanup of
// its children from the signal handler) go to stderr directly, since a handler of yours cannot
// run safely there.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace zproc {

/// How much a message matters, least first; `off` (as a level to hear) silences everything.
enum class log_level { trace, debug, info, warning, error, off };

/// The name of a level: "trace", "debug", "info", "warning", "error", "off".
std::string_view to_string(log_level level) noexcept;
/// The level a name means ("warn" too); nullopt for none.
std::optional<log_level> parse_log_level(std::string_view name) noexcept;

/// One message of the library.
struct log_record {
  /// How much it matters.
  log_level level;
  /// What it comes from: "process" (supervision, crash reports, cleanup), "swarm" (workers),
  /// "server", "child" (a spawned process that could not start).
  std::string_view component;
  /// The text, without the "[zproc] " prefix and the final newline; may hold several lines (a
  /// crash report).
  std::string_view message;
};

/// Receives the library's messages (see set_log_handler()).
using log_handler = std::function<void(const log_record&)>;

/// Sends the library's messages of at least the current level to `handler` (empty: the
/// default, stderr) and returns the handler it replaces. Thread-safe; the handler may be called
/// from any of the library's threads (one call at a time) and must not throw (what it throws is
/// dropped).
log_handler set_log_handler(log_handler handler);
/// Messages below `level` are dropped before they are made. Thread-safe.
void set_log_level(log_level level) noexcept;
/// The level set last, or at first ZPROC_LOG_LEVEL's (info when it is not set or not a level).
log_level get_log_level() noexcept;

namespace detail {
/// Whether a message of `level` would go anywhere.
bool log_enabled(log_level level) noexcept;
/// Sends a message (never throws).
void log(log_level level, std::string_view component, std::string_view message) noexcept;
}  // namespace detail

}  // namespace zproc
