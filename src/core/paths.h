// core/paths.h — where Kindred keeps downloaded things, and the `default` model alias.
#pragma once

#include <string>

namespace kindred {

// ${KINDRED_HOME}, else $HOME/.cache/kindred.
std::string kindred_home();

// File name of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF).
inline constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

// "default" -> <kindred_home>/models/<kDefaultModelFile>; anything else unchanged.
// Throws Error telling how to fetch it when `default` is asked for and missing.
std::string resolve_model_path(const std::string& model);

}  // namespace kindred
