#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <zproc/context.hpp>

#include <csignal>

int main(int argc, char** argv) {
  zproc::init(argc, argv);  // a process spawned by a test runs its target and exits here
  // A peer that closes its socket must give EPIPE, not kill the test run.
  std::signal(SIGPIPE, SIG_IGN);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
