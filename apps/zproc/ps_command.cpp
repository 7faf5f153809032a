// zproc ps [--all|--running] [--json]: the processes spawned through the server, as a table or
// as JSON lines.
#include "cli.hpp"

#include <zproc/client.hpp>
#include <zproc/process_record.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace zproc::cli {

namespace {

constexpr std::size_t max_target_width = 40;

/// Server wall time (ms since the epoch) as local HH:MM:SS.
std::string clock_time(std::int64_t ms) {
  if (ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm local{};
  if (!::localtime_r(&t, &local)) return "-";
  char text[16];
  return std::strftime(text, sizeof text, "%H:%M:%S", &local) ? text : "-";
}

/// At most `width` bytes, cut on a UTF-8 character boundary, "..." marking the cut.
std::string fit(const std::string& s, std::size_t width) {
  if (s.size() <= width) return s;
  std::size_t end = width - 3;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "...";
}

std::string first_line(const std::string& s) {
  auto line = s.substr(0, s.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

/// Why a process crashed or failed: the "what:" line of its crash report (the first line of
/// a report in another format).
std::string reason(const std::string& report) {
  constexpr std::string_view what = "  what: ";
  for (std::size_t at = 0; at < report.size();) {
    const auto end = std::min(report.find('\n', at), report.size());
    if (report.compare(at, what.size(), what) == 0)
      return first_line(report.substr(at + what.size(), end - at - what.size()));
    at = end + 1;
  }
  return first_line(report);
}

using row = std::array<std::string, 8>;
constexpr std::array<bool, 8> right_aligned = {true, true, true, false, false, false, true, false};

void print_table(const std::vector<process_record>& records, std::ostream& out) {
  std::vector<row> rows;
  rows.push_back({"ID", "PID", "PPID", "TARGET", "NAMESPACE", "STATE", "EXIT", "STARTED"});
  for (const auto& r : records)
    rows.push_back({std::to_string(r.id), std::to_string(r.pid), std::to_string(r.ppid),
                    fit(r.target, max_target_width), r.ns, r.state,
                    r.exitcode ? std::to_string(*r.exitcode) : "-", clock_time(r.started_ms)});
  std::array<std::size_t, 8> width{};
  for (const auto& cells : rows)
    for (std::size_t i = 0; i < cells.size(); ++i) width[i] = std::max(width[i], cells[i].size());
  for (const auto& cells : rows) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) line += "  ";
      const std::string pad(width[i] - cells[i].size(), ' ');
      const bool last = i + 1 == cells.size();
      line += right_aligned[i] ? pad + cells[i] : cells[i] + (last ? "" : pad);
    }
    out << line << "\n";
  }

  bool heading = false;
  for (const auto& r : records) {
    if ((r.state != "crashed" && r.state != "failed") || r.crash_report.empty()) continue;
    if (!heading) out << "\n";
    heading = true;
    out << r.id << " " << fit(r.target, max_target_width) << " " << r.state << ": "
        << reason(r.crash_report) << "\n";
  }
}

}  // namespace

int run_ps(const arguments& args) {
  if (args.all && args.running) throw usage_error{"'ps' takes --all or --running, not both"};
  client c;
  c.connect(args.require_address());
  auto fetch = [&] {
    std::vector<process_record> records = list_processes(c);
    if (args.running)
      std::erase_if(records, [](const process_record& r) { return r.state != "running"; });
    return records;
  };
  if (args.watch) {  // until interrupted (or the server gives up being reachable)
    if (args.json_lines) throw usage_error{"'ps' takes --watch or --json, not both"};
    const bool terminal = ::isatty(STDOUT_FILENO) == 1;
    std::optional<std::vector<process_record>> shown;
    for (;;) {
      auto records = fetch();
      if (records != shown) {
        std::ostringstream table;
        print_table(records, table);
        std::cout << (terminal ? "\x1b[H\x1b[2J" : (shown ? "\n" : "")) << table.str();
        std::cout.flush();
        shown = std::move(records);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));  // (records have no watch)
    }
  }
  std::vector<process_record> records = fetch();
  if (args.json_lines) {
    for (const auto& r : records)
      std::cout << json(r).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    print_table(records, std::cout);
  }
  std::cout.flush();
  return 0;
}

}  // namespace zproc::cli
