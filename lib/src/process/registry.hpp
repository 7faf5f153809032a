// The targets registered with ZPROC_TARGET and the exception types named by retry_on<E>():
// static tables filled during static initialization, identical in every process of a binary.
#pragma once

#include <zproc/target.hpp>

#include <exception>
#include <string>
#include <vector>

namespace zproc::process_detail {

/// The target registered at `fn`; throws std::invalid_argument when it is not registered.
const detail::target_info& target_at(const void* fn);
/// The target registered as `name`, or nullptr.
const detail::target_info* target_named(const std::string& name);

/// Whether the exception `e` is of one of `types` (mangled names given to retry_on<E>()).
bool exception_matches(const std::exception_ptr& e, const std::vector<std::string>& types);

}  // namespace zproc::process_detail
