// Whether this build runs under AddressSanitizer: GCC defines __SANITIZE_ADDRESS__, Clang 14
// answers __has_feature(address_sanitizer).
#pragma once

namespace zproc::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_address_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool under_address_sanitizer = true;
#else
inline constexpr bool under_address_sanitizer = false;
#endif
#else
inline constexpr bool under_address_sanitizer = false;
#endif

}  // namespace zproc::test
