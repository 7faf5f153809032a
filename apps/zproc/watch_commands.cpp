// zproc watch [KEY...] | zproc history: updates as JSON lines, or as readable lines.
#include "cli.hpp"

#include <zproc/client.hpp>
#include <zproc/state.hpp>

#include <unistd.h>

#include <ctime>
#include <iostream>

namespace zproc::cli {

namespace {

/// Whether updates are printed as readable lines: --format pretty, or no --format on a terminal.
bool pretty(const arguments& args) {
  if (args.format == "pretty") return true;
  if (args.format == "json") return false;
  return ::isatty(STDOUT_FILENO) == 1;
}

/// One readable line: "rev 5  12:00:01.234  client 7  cookies: 6 → 16", coloured on a terminal
/// (the key bold, what was removed red, what was written green).
std::string pretty_line(const update& u, bool colour) {
  const auto bold = colour ? "\x1b[1m" : "", red = colour ? "\x1b[31m" : "",
             green = colour ? "\x1b[32m" : "", dim = colour ? "\x1b[2m" : "",
             reset = colour ? "\x1b[0m" : "";
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      u.time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char clock[32];
  std::snprintf(clock, sizeof clock, "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min,
                local.tm_sec, static_cast<int>((us / 1000) % 1000));
  std::string line = std::string(dim) + "rev " + std::to_string(u.revision) + "  " + clock +
                     "  client " + std::to_string(u.client_id) + reset;
  if (u.identical) line += "  (identical)";
  for (const auto& c : u.changes) {
    line += std::string("  ") + bold + c.key + reset + ": ";
    line += c.before ? red + c.before->dump() + reset : std::string("(absent)");
    line += " \u2192 ";
    line += c.after ? green + c.after->dump() + reset : std::string("(deleted)");
  }
  return line;
}

void print(const update& u, bool readable, bool colour) {
  if (readable) {
    std::cout << pretty_line(u, colour) << "\n";
  } else {
    std::cout << json(u).dump() << "\n";  // the schema of zproc::to_json
  }
}

}  // namespace

int run_watch(const arguments& args) {
  client c;
  c.connect(args.require_address());
  state st(c, args.ns);
  watch_options options;
  options.live = args.live;
  options.start = args.from;
  options.identical_okay = true;  // a tool shows every write
  if (args.snapshots) {
    auto w = st.when_change(args.positional, options);
    for (const auto& snapshot : w) std::cout << snapshot.dump() << std::endl;
  } else {
    const bool readable = pretty(args);
    const bool colour = readable && ::isatty(STDOUT_FILENO) == 1;
    auto w = st.when_change_raw(args.positional, options);
    for (const auto& u : w) {
      print(u, readable, colour);
      std::cout.flush();
    }
  }
  return 0;
}

int run_history(const arguments& args) {
  client c;
  c.connect(args.require_address());
  state st(c, args.ns);
  const bool readable = pretty(args);
  const bool colour = readable && ::isatty(STDOUT_FILENO) == 1;
  std::uint64_t from = args.from.value_or(0);
  // Page by page (a page may be short to fit a frame): until a page is empty.
  for (;;) {
    auto page = st.history(from, args.to);
    if (page.empty()) break;
    for (const auto& u : page) print(u, readable, colour);
    from = page.back().revision + 1;
    if (args.to && from > *args.to) break;
  }
  std::cout.flush();
  return 0;
}

}  // namespace zproc::cli
