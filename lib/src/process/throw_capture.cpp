// Interposes __cxa_throw: defined here, it takes precedence over libstdc++'s for the code of
// the program (and, through the dynamic symbol table, for libraries' throws), records the
// frames, and calls the real one. The declaration matches the one g++ has built in.
#define BOOST_STACKTRACE_LINK 1  // the implementation is libboost_stacktrace_backtrace
#include "process/throw_capture.hpp"

#include <boost/stacktrace/frame.hpp>
#include <boost/stacktrace/safe_dump_to.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cstddef>

namespace zproc::process_detail {
namespace {

std::atomic<bool> armed{false};

struct capture {
  void* object = nullptr;
  std::size_t count = 0;
  boost::stacktrace::frame::native_frame_ptr_t frames[64];
};
constexpr std::size_t ring_size = 4;
thread_local capture ring[ring_size];
thread_local std::size_t next_slot = 0;

}  // namespace

void arm_throw_capture() noexcept { armed.store(true, std::memory_order_relaxed); }

std::vector<void*> throw_frames(const std::exception_ptr& e) {
  // libstdc++'s exception_ptr is the address of the thrown object, as __cxa_throw received it.
  static_assert(sizeof(std::exception_ptr) == sizeof(void*));
  void* object = *reinterpret_cast<void* const*>(&e);
  for (std::size_t i = 0; i < ring_size; ++i) {
    const capture& c = ring[(next_slot + ring_size - 1 - i) % ring_size];
    if (c.object != object || c.count == 0) continue;
    std::vector<void*> out;
    for (std::size_t f = 0; f < c.count; ++f) out.push_back(const_cast<void*>(c.frames[f]));
    return out;
  }
  return {};
}

}  // namespace zproc::process_detail

extern "C" [[noreturn]] void __cxa_throw(void* object, void* type, void (*destroy)(void*)) {
  using namespace zproc::process_detail;
  if (armed.load(std::memory_order_relaxed)) {
    capture& c = ring[next_slot];
    next_slot = (next_slot + 1) % ring_size;
    c.object = object;
    c.count = boost::stacktrace::safe_dump_to(1, c.frames, sizeof c.frames);
  }
  using real_throw = void (*)(void*, void*, void (*)(void*));
  static const auto real = reinterpret_cast<real_throw>(dlsym(RTLD_NEXT, "__cxa_throw"));
  real(object, type, destroy);
  __builtin_unreachable();
}
