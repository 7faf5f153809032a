// zproc workers [NAME] [--json]: the workers of a swarm (default "default") and its queue.
#include "cli.hpp"

#include <zproc/client.hpp>
#include <zproc/swarm.hpp>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

namespace zproc::cli {

int run_workers(const arguments& args) {
  const std::string& name = args.swarm;
  client c;
  c.connect(args.require_address());
  const swarm_status s = get_swarm_status(c, name);
  if (args.json_lines) {
    json j = {{"swarm", name}, {"queued", s.queued}, {"running", s.running}, {"workers", json::array()}};
    for (const auto& w : s.workers)
      j["workers"].push_back({{"pid", w.pid}, {"host", w.host}, {"running", w.running},
                              {"done", w.done}, {"retiring", w.retiring}});
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << "swarm '" << name << "': " << s.workers.size() << " worker(s), " << s.queued
            << " task(s) queued, " << s.running << " running\n";
  if (s.workers.empty()) return 0;
  std::size_t host_width = 4;
  for (const auto& w : s.workers) host_width = std::max(host_width, w.host.size());
  auto pad = [](const std::string& text, std::size_t width, bool right) {
    const std::string spaces(width > text.size() ? width - text.size() : 0, ' ');
    return right ? spaces + text : text + spaces;
  };
  std::cout << pad("PID", 8, true) << "  " << pad("HOST", host_width, false) << "  "
            << pad("RUNNING", 7, true) << "  " << pad("DONE", 8, true) << "  STATE\n";
  for (const auto& w : s.workers)
    std::cout << pad(std::to_string(w.pid), 8, true) << "  " << pad(w.host, host_width, false)
              << "  " << pad(std::to_string(w.running), 7, true) << "  "
              << pad(std::to_string(w.done), 8, true) << "  "
              << (w.retiring ? "retiring" : w.running ? "working" : "idle") << "\n";
  return 0;
}

}  // namespace zproc::cli
