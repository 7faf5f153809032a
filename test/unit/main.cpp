// The main of the unit-test programs (one per component): no server, no child process, so
// none of zproc::init's work (test/main.cpp is the integration tests' main).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
