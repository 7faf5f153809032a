// zproc::init: the entry of every program that uses zproc, above every layer. In a process
// started by spawn() it runs the target and exits; started as a swarm worker (--zproc-worker)
// it works and exits; otherwise it installs the termination handlers and returns.
#include "process/channel.hpp"
#include "process/child.hpp"
#include "swarm/worker.hpp"

#include <zproc/context.hpp>

namespace zproc {

void init(int argc, char** argv) {
  if (argc >= 3 && argv[1] == process_detail::child_flag) process_detail::run_spawned(argc, argv);
  process_detail::install_termination_handlers(true);
  swarm_detail::work_if_asked(argc, argv);
}

bool is_spawned_process() noexcept { return process_detail::spawned_ticket() != nullptr; }

}  // namespace zproc
