// An exception thrown in a child process reaches the parent's wait() as a zproc::remote_error:
// its type, its message, the child's pid and target, and the stacktrace of the throw point.
#include <zproc/zproc.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

[[gnu::noinline]] int count_cookies(const std::string& jar) {
  if (jar.empty()) throw std::runtime_error("out of cookies");
  return static_cast<int>(jar.size());
}

[[gnu::noinline]] int cookie_counter(std::string jar) { return count_cookies(jar); }
ZPROC_TARGET(cookie_counter);

}  // namespace

int main(int argc, char** argv) {
  zproc::init(argc, argv);
  zproc::context ctx;

  std::printf("a full jar holds %d cookies\n", ctx.spawn(cookie_counter, "oooo").wait<int>());

  auto proc = ctx.spawn(cookie_counter, "");
  try {
    proc.wait<int>();
    return 1;  // not reached: the child threw
  } catch (const zproc::remote_error& e) {
    std::printf("caught zproc::remote_error from '%s' (pid %lld):\n", e.target().c_str(),
                static_cast<long long>(e.pid()));
    std::printf("  type: %s\n  message: %s\n  thrown at:\n", e.type().c_str(),
                e.message().c_str());
    std::printf("%s", e.stacktrace().c_str());
  }
  std::printf("the child's exit code: %d\n", proc.exitcode().value_or(0));
  return 0;
}
