// The state of a task_submitter (zproc/detail/task_collector.hpp): the swarm it submits to, and
// the plan (swarm/submit_plan.hpp: chunk size, window, what the next task_submit holds).
#pragma once

#include "swarm/submit_plan.hpp"
#include "swarm/swarm_core.hpp"

#include <zproc/detail/task_collector.hpp>
#include <zproc/json.hpp>

#include <cstddef>
#include <memory>
#include <span>

namespace zproc::detail {

struct task_submitter::state {
  using config = submit_plan::config;

  state(std::shared_ptr<swarm_core> c, config s);

  std::shared_ptr<swarm_core> core;
  submit_plan plan;

  /// The collector of the tasks a task_submit reply names: `sent`, the chunks it carried
  /// (their calls; throws protocol::tasks::malformed).
  std::shared_ptr<task_collector> collector_of(const json& reply,
                                               std::span<const packed_chunk> sent) const;
};

}  // namespace zproc::detail
