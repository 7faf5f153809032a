// The spawned side: what zproc::init does in a process started by spawn().
#pragma once

#include "process/channel.hpp"

namespace zproc::process_detail {

/// The ticket this process was spawned with, or nullptr in a process zproc did not spawn.
const ticket* spawned_ticket() noexcept;

/// Reads the ticket from the channel, runs the target, reports its value or exception to the
/// parent, and exits.
[[noreturn]] void run_spawned(int argc, char** argv);

/// SIGINT/SIGTERM stop the processes this one spawned first (`only_if_default`: unless the
/// program handles them already).
void install_termination_handlers(bool only_if_default);

}  // namespace zproc::process_detail
