// zproc_test_failing_server ADDRESS: a state server whose allocations fail at random once armed.
// Prints "listening at ADDRESS" like `zproc server`. SIGUSR1 arms the failures, SIGUSR2
// disarms them, SIGTERM stops it. Environment: ZPROC_FAIL_LOG=FILE (stderr), ZPROC_FAIL_ONE_IN=N (an allocation fails with
// probability 1/N, default 50), ZPROC_FAIL_MIN_BYTES=B (only allocations of at least B bytes
// fail, default 8192: what fails first when memory runs out is a big request, while the small
// ones of a process that still runs are served from memory it already has; and nlohmann_json
// allocates in its destructors, where a failure aborts), ZPROC_FAIL_SEED.
#include <zproc/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/stacktrace.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <exception>
#include <new>
#include <string>

namespace {

std::atomic<bool> armed{false};
std::size_t one_in = 50;
std::size_t min_bytes = 8192;
std::uint64_t rng = 0x9e3779b97f4a7c15ull;
std::atomic<std::uint64_t> failures{0};

bool should_fail(std::size_t n) {
  if (!armed.load(std::memory_order_relaxed) || n < min_bytes) return false;
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  if (rng % one_in != 0) return false;
  failures.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void* allocate(std::size_t n) {
  if (should_fail(n)) throw std::bad_alloc();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

void* allocate_aligned(std::size_t n, std::align_val_t a) {
  if (should_fail(n)) throw std::bad_alloc();
  const auto align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}

}  // namespace

// ThreadSanitizer's runtime defines the allocation functions itself (a second definition does
// not link): under scripts/tsan this server's allocations do not fail (no suite it runs uses it).
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZPROC_KEEP_ALLOCATOR 1
#endif
#endif
#ifndef ZPROC_KEEP_ALLOCATOR
void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return should_fail(n) ? nullptr : std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return should_fail(n) ? nullptr : std::malloc(n == 0 ? 1 : n);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#endif

int main(int argc, char** argv) {
  if (const char* log = std::getenv("ZPROC_FAIL_LOG")) {  // stderr, for a test to show
    if (std::freopen(log, "w", stderr) == nullptr) return 3;
    std::setvbuf(stderr, nullptr, _IONBF, 0);
  }
  // A failure the server did not handle ends here: say where, for the test's output.
  std::set_terminate([] {
    armed = false;
    std::string what = "no exception";
    if (auto e = std::current_exception()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        what = ex.what();
      } catch (...) {
        what = "an exception of an unknown type";
      }
    }
    std::fprintf(stderr, "failing server: terminate (%s) at\n%s\n", what.c_str(),
                 boost::stacktrace::to_string(boost::stacktrace::stacktrace()).c_str());
    std::abort();
  });
  if (argc != 2) {
    std::fprintf(stderr, "usage: zproc_test_failing_server ADDRESS\n");
    return 2;
  }
  if (const char* v = std::getenv("ZPROC_FAIL_ONE_IN")) one_in = std::max(1ul, std::strtoul(v, nullptr, 10));
  if (const char* v = std::getenv("ZPROC_FAIL_MIN_BYTES")) min_bytes = std::strtoul(v, nullptr, 10);
  if (const char* v = std::getenv("ZPROC_FAIL_SEED")) rng ^= std::strtoull(v, nullptr, 10) * 0x2545f4914f6cdd1dull;
  boost::asio::io_context ioc(1);
  zproc::server srv(ioc.get_executor(), {.listen = {argv[1]}});
  srv.start();
  boost::asio::signal_set signals(ioc, SIGTERM, SIGUSR1, SIGUSR2);
  std::function<void(zproc::error_code, int)> on_signal = [&](zproc::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGTERM) {
      std::fprintf(stderr, "failing server: %llu allocations failed\n",
                   static_cast<unsigned long long>(failures.load()));
      srv.stop();
      return;
    }
    armed = sig == SIGUSR1;
    if (!armed) {
      std::printf("disarmed after %llu failures\n",
                  static_cast<unsigned long long>(failures.load()));
      std::fflush(stdout);
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  std::printf("listening at %s\n", srv.addresses().front().c_str());
  std::fflush(stdout);
  ioc.run();
  return 0;
}
