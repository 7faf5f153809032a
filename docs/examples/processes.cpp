// Process records: the server keeps a record of every process spawned through it. Built and
// run by the tests (example.processes).
#include <zproc/zproc.hpp>

#include <iostream>

namespace {

// What a supervisor sends when it starts a process and when the process ends (zproc's process
// API does this for you; here it stands in for it).
std::uint64_t register_process(const zproc::client& supervisor, std::int64_t pid,
                               const std::string& target) {
  zproc::json request = {{"o", "proc_start"}};
  request["record"] = {{"pid", pid},       {"ppid", 1},     {"target", target},
                       {"n", "kitchen"},   {"host", "box"}, {"kind", "target"},
                       {"attempt", 1}};
  return zproc::detail::call<std::uint64_t>(supervisor.impl(), std::move(request));
}

void report_crash(const zproc::client& supervisor, std::uint64_t id) {
  zproc::json request = {{"o", "proc_update"}, {"id", id}};
  request["record"] = {{"state", "crashed"}, {"exitcode", -11},
                       {"crash_report", "Segmentation fault (signal 11)\n#0 bake()"}};
  zproc::detail::call<bool>(supervisor.impl(), std::move(request));
}

}  // namespace

int main() {
  zproc::server_thread server;
  zproc::client supervisor;
  supervisor.connect(server.address());
  register_process(supervisor, 4242, "baker");
  report_crash(supervisor, register_process(supervisor, 4243, "oven"));

  zproc::client c;
  c.connect(server.address());
  // [list]
  for (const zproc::process_record& p : zproc::list_processes(c)) {
    std::cout << p.id << " " << p.target << " (pid " << p.pid << "): " << p.state;
    if (p.exitcode) std::cout << ", exit code " << *p.exitcode;
    std::cout << "\n";
  }
  // [list]
}
