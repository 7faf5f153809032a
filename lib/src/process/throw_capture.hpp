// The stacktrace of a throw point: C++ keeps none, so the throw itself (__cxa_throw) is
// intercepted in spawned processes and its frames kept per thread until the exception is caught.
#pragma once

#include <exception>
#include <vector>

namespace zproc::process_detail {

/// Starts capturing (spawned processes only: it costs an unwind per throw).
void arm_throw_capture() noexcept;

/// The frames (innermost first) of the throw of `e`, if it was captured on this thread.
std::vector<void*> throw_frames(const std::exception_ptr& e);

}  // namespace zproc::process_detail
