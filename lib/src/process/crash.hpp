// Crash reports: stacktraces of throws and of fatal signals, resolved to function and
// file:line, and the report the supervisor prints (MISSION.md's format).
#pragma once

#include "process/channel.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace zproc::process_detail {

/// This program's file (/proc/self/exe), read once.
const std::string& executable_path();
/// This machine's name (gethostname, "localhost" if it fails), read once.
const std::string& host_name();

/// In a spawned process: on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, write the raw frames
/// and the loaded objects to `fd` (signal-safe), then die of the signal.
void install_crash_handlers(int fd);

/// The objects (executable, shared libraries) loaded in this process, with their address ranges.
std::vector<signal_dump::object> loaded_objects();

/// Resolves return addresses of this process: "function at file:line" (or "function in
/// object"), one line per function, inlined ones included (innermost first). Frames from zproc's
/// own runner on are dropped; a frame with a file:line never is. Resolutions are cached per
/// thread (libbacktrace reads the debug info once per thread and object).
std::vector<std::string> resolve_frames(const std::vector<void*>& frames);

/// Resolves frames of another process running the same binary (the throw of a spawned
/// process's exception): each frame is moved from the child's mapping of its object to this
/// process's mapping of the same object, then resolved here (cached: a retried failure costs
/// nothing more).
std::vector<std::string> resolve_remote(const std::vector<std::uint64_t>& frames,
                                        const std::vector<signal_dump::object>& objects);

/// Resolves a fatal signal's dump of another process running the same binary (as above; the
/// frames of zproc's handler and of the signal trampoline are cut).
std::vector<std::string> resolve_dump(const signal_dump& dump);

/// In a catch block: the exception in flight (its demangled type, its what(), and with
/// `with_frames` the stacktrace of its throw, resolved here). `retry` is left false.
exception_report describe_current_exception(bool with_frames);

/// In a catch block of a spawned process: the exception in flight with the raw frames of its
/// throw and the loaded objects, for the parent to resolve (nothing is symbolised here).
exception_report capture_current_exception();

/// "SIGSEGV (Segmentation fault)".
std::string describe_signal(int signo);

struct crash_info {
  std::string target;
  std::int64_t pid = 0;
  std::int64_t ppid = 0;
  std::string what;
  std::vector<std::string> frames;
};
std::string format_crash_report(const crash_info& c);

/// "0# frame\n1# frame\n...": a stacktrace as remote_error::stacktrace() gives it.
std::string format_stacktrace(const std::vector<std::string>& frames);

}  // namespace zproc::process_detail
