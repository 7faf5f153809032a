#include "failing_alloc.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

// Not under a sanitizer: its runtime replaces operator new itself.
#define ZPROC_FAILING_ALLOC 1
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#undef ZPROC_FAILING_ALLOC
#define ZPROC_FAILING_ALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#undef ZPROC_FAILING_ALLOC
#define ZPROC_FAILING_ALLOC 0
#endif
#endif

namespace zproc::test::failing_alloc {
namespace {
std::atomic<long> countdown{-1};  // -1: disarmed
std::atomic<bool> happened{false};
std::atomic<unsigned long> made{0};
}  // namespace

const bool available = ZPROC_FAILING_ALLOC != 0;

void fail_after(long n) noexcept {
  happened = false;
  if (available) countdown = n;
}
void disarm() noexcept { countdown = -1; }
bool failed() noexcept { return happened; }
unsigned long allocations() noexcept { return made.load(std::memory_order_relaxed); }

#if ZPROC_FAILING_ALLOC
namespace {
void* allocate(std::size_t n) {
  made.fetch_add(1, std::memory_order_relaxed);
  long left = countdown.load(std::memory_order_relaxed);
  while (left >= 0) {
    if (countdown.compare_exchange_weak(left, left - 1)) {
      if (left == 0) {
        happened = true;
        throw std::bad_alloc();
      }
      break;
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace
#endif

}  // namespace zproc::test::failing_alloc

#if ZPROC_FAILING_ALLOC
void* operator new(std::size_t n) { return zproc::test::failing_alloc::allocate(n); }
void* operator new[](std::size_t n) { return zproc::test::failing_alloc::allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif
