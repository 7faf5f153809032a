// The library's log sink (zproc/log.hpp).
#include <zproc/log.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace zproc {

namespace {

constexpr std::array<std::string_view, 6> level_names = {"trace", "debug",   "info",
                                                         "warning", "error", "off"};

/// -1: not read from ZPROC_LOG_LEVEL yet.
std::atomic<int> current_level{-1};

std::recursive_mutex& handler_mutex() {
  static std::recursive_mutex m;
  return m;
}
/// Set while this thread runs the handler: a message the handler itself causes goes to stderr.
thread_local bool in_handler = false;
log_handler& installed() {
  static log_handler h;
  return h;
}

void to_stderr(const log_record& r) {
  std::string line = "[zproc] ";
  line += r.message;
  if (line.empty() || line.back() != '\n') line += '\n';
  std::fflush(stdout);  // (what the program printed before comes first)
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

std::string_view to_string(log_level level) noexcept {
  const auto i = static_cast<std::size_t>(level);
  return i < level_names.size() ? level_names[i] : "unknown";
}

std::optional<log_level> parse_log_level(std::string_view name) noexcept {
  for (std::size_t i = 0; i < level_names.size(); ++i)
    if (level_names[i] == name) return static_cast<log_level>(i);
  if (name == "warn") return log_level::warning;
  return std::nullopt;
}

log_handler set_log_handler(log_handler handler) {
  std::lock_guard lock(handler_mutex());
  log_handler old = std::move(installed());
  installed() = std::move(handler);
  return old;
}

void set_log_level(log_level level) noexcept { current_level = static_cast<int>(level); }

log_level get_log_level() noexcept {
  int l = current_level.load();
  if (l < 0) {
    log_level from_env = log_level::info;
    if (const char* v = std::getenv("ZPROC_LOG_LEVEL"))
      if (auto parsed = parse_log_level(v)) from_env = *parsed;
    int expected = -1;
    current_level.compare_exchange_strong(expected, static_cast<int>(from_env));
    l = current_level.load();
  }
  return static_cast<log_level>(l);
}

namespace detail {

bool log_enabled(log_level level) noexcept {
  return level != log_level::off && static_cast<int>(level) >= static_cast<int>(get_log_level());
}

void log(log_level level, std::string_view component, std::string_view message) noexcept {
  if (!log_enabled(level)) return;
  // (A trailing newline is not part of the message.)
  while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
  const log_record r{level, component, message};
  try {
    std::lock_guard lock(handler_mutex());
    if (installed() && !in_handler) {
      in_handler = true;
      try {
        installed()(r);
      } catch (...) {  // a handler's failure is dropped: reporting must not fail the caller
      }
      in_handler = false;
    } else {
      to_stderr(r);
    }
  } catch (...) {  // (no memory for the line)
  }
}

}  // namespace detail

}  // namespace zproc
