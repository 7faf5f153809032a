// A swarm's worker loop (lib/src/swarm/worker.cpp).
#pragma once

#include <string>

namespace zproc {
class context;
}

namespace zproc::swarm_detail {

/// Takes and runs tasks of swarm `queue` on the context's server until the server retires
/// this worker or goes away.
void run_worker(context& ctx, const std::string& queue);

/// zproc::init: started as `--zproc-worker ADDRESS [--zproc-swarm NAME]` (or with
/// ZPROC_WORKER / ZPROC_SWARM set), joins the swarm and exits when done; else returns.
void work_if_asked(int argc, char** argv);

/// The registered target that spawned workers run: run_worker on the swarm `queue`.
void zproc_swarm_worker(context& ctx, std::string queue);

}  // namespace zproc::swarm_detail
