// The wire form of the swarm's task queue (see docs/protocol.md, "Tasks"): the operations and
// their fields. Constants only, no I/O.
//
// A task is one chunk of work: a target's name, the packed arguments of `items` calls, and,
// once a worker ran it, its outcome. Outcomes are objects:
//   {"v": <bin: the packed values of the calls that returned>,
//    "f": [[index, type, message, stacktrace, crash_report], ...]  (the calls that threw),
//    "w": <pid of the worker>, "h": <its host>}
// or, when no worker could run it to the end (its workers died, max_attempts times):
//   {"x": <what happened>, "w": <pid of the last worker>, "h": <its host>, "a": <attempts>}
#pragma once

#include <cstddef>

namespace zproc::protocol::tasks {

/// Operations: op::task_submit, task_take, task_done, task_wait, task_cancel, task_retire,
/// task_info (protocol/ops.hpp).

/// Request and reply fields (besides i and o).
inline constexpr const char* queue = "q";          // the swarm's name
inline constexpr const char* target = "tg";        // submit: the target's name
inline constexpr const char* tasks = "t";          // submit: [[args, items], ...]; take reply:
                                                   // [[id, target, args, items, attempt, ct]]
inline constexpr const char* bound = "bound";      // submit: cancelled when the submitter leaves
inline constexpr const char* max_attempts = "ma";  // submit: attempts before a task fails
inline constexpr const char* call_timeout = "ct";  // submit: ms a call may run (0: no limit)
inline constexpr const char* first = "first";      // submit reply: id of the first task
inline constexpr const char* max = "max";          // take: at most this many tasks
inline constexpr const char* max_calls = "calls";  // take: holding at most this many calls
inline constexpr const char* calls_target = "ctg";  // take: more than one task only of this target
inline constexpr const char* pid = "pid";          // take: the worker's pid; outcome "w"
inline constexpr const char* host = "host";        // take: the worker's host
inline constexpr const char* retire = "retire";    // take reply: the worker is to exit
inline constexpr const char* results = "r";        // done: [[id, outcome], ...]; wait reply
inline constexpr const char* from = "from";        // wait, cancel: the first id of the range
inline constexpr const char* to = "to";            // wait, cancel: one past the last id
inline constexpr const char* ack = "ack";          // wait: ids whose outcome was received
inline constexpr const char* wait_ms = "ms";       // wait: answer [] after this long
inline constexpr const char* left = "left";        // wait reply: tasks of the range still held
inline constexpr const char* pids = "pids";        // retire: the workers' pids
// info reply: {workers: [{client, pid, host, running, done, retiring}], queued, running}
inline constexpr const char* workers = "workers";
inline constexpr const char* queued = "queued";
inline constexpr const char* running = "running";
inline constexpr const char* client = "client";
inline constexpr const char* done = "done";
inline constexpr const char* retiring = "retiring";

/// Outcome fields.
inline constexpr const char* values = "v";
inline constexpr const char* failures = "f";
inline constexpr const char* worker_pid = "w";
inline constexpr const char* worker_host = "h";
inline constexpr const char* lost = "x";
inline constexpr const char* attempts = "a";
inline constexpr const char* items = "n";         // how many calls the task holds
inline constexpr const char* target_name = "tg";  // the target (as in submit)

/// A wait reply carries outcomes up to about this many bytes (then the rest in the next one).
inline constexpr std::size_t max_wait_reply_bytes = 2 * 1024 * 1024;
/// The longest a wait may park on the server.
inline constexpr std::size_t max_wait_ms = 60'000;

}  // namespace zproc::protocol::tasks
