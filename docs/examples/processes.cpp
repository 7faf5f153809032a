// Process records: the server keeps a record of every process spawned through it. Built and
// run by the tests (example.processes). Public API only: two real processes, one that bakes
// and one whose oven fails, then the records a client reads back.
#include <zproc/zproc.hpp>

#include <iostream>
#include <stdexcept>

namespace {

int baker() { return 12; }
ZPROC_TARGET(baker);

void oven() { throw std::runtime_error("the oven is cold"); }
ZPROC_TARGET(oven);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);  // in a spawned process: run its target
  zproc::context ctx;       // an embedded server; its processes are recorded there
  if (ctx.spawn(baker).wait<int>() != 12) return 1;
  try {
    ctx.spawn(oven).wait();
    return 1;  // (the example fails if the oven's exception did not arrive)
  } catch (const zproc::remote_error& e) {
    std::cout << "oven failed: " << e.message() << "\n";
  }

  zproc::client c;
  c.connect(ctx.address());
  // [list]
  for (const zproc::process_record& p : zproc::list_processes(c)) {
    std::cout << p.id << " " << p.target << " (pid " << p.pid << "): " << p.state;
    if (p.exitcode) std::cout << ", exit code " << *p.exitcode;
    std::cout << "\n";
  }
  // [list]
}
