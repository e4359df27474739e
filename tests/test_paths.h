// tests/test_paths.h — where tests find the project's files, ../shared and the default model.
#pragma once

#include <string>

#include "core/paths.h"

namespace kindred::testing {

inline std::string source_path(const std::string& relative) { return std::string(KINDRED_SOURCE_DIR) + "/" + relative; }
inline std::string shared_path(const std::string& relative) { return std::string(KINDRED_SHARED_DIR) + "/" + relative; }
// The embedded default model; throws (failing the test) with a fetch hint when missing.
inline std::string default_model_path() { return resolve_model_path("default"); }

}  // namespace kindred::testing
