// zproc/json.hpp - values in the state are nlohmann::json.
#pragma once

#include <nlohmann/json.hpp>

namespace zproc {
using json = nlohmann::json;
}  // namespace zproc
