#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "support/file_log.hpp"

#include <zproc/context.hpp>

#include <csignal>
#include <cstdlib>

int main(int argc, char** argv) {
  // The log test's processes (this one, and those it spawns) log into a file.
  if (const char* f = std::getenv("ZPROC_TEST_LOG_FILE"))
    zproc::set_log_handler(zproc::test::file_log_handler(f));
  zproc::init(argc, argv);  // a process spawned by a test runs its target and exits here
  // A peer that closes its socket must give EPIPE, not kill the test run.
  std::signal(SIGPIPE, SIG_IGN);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
