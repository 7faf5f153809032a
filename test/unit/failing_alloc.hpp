// Allocation failure on demand, and a count of allocations, for the server's unit tests
// (failing_alloc.cpp replaces the global operator new of zproc_server_tests): arm it, and the
// n-th allocation after that throws std::bad_alloc, once. Not in a sanitizer build (its
// runtime owns operator new there): `failing_alloc::available` is false, arming does nothing
// and nothing is counted.
#pragma once

#include <cstddef>

namespace zproc::test::failing_alloc {

extern const bool available;
/// The allocation `n` allocations from now (0: the next) throws std::bad_alloc.
void fail_after(long n) noexcept;
/// No allocation fails (the armed failure, if it did not happen, is dropped).
void disarm() noexcept;
/// Whether the armed failure happened.
bool failed() noexcept;
/// Allocations made so far by this program (operator new, every thread): the difference of
/// two readings is what the code between them allocated.
unsigned long allocations() noexcept;

}  // namespace zproc::test::failing_alloc
