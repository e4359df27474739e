// core/paths.h — where Kindred keeps downloaded things, and the model aliases (`default`, `gemma3-270m`).
#pragma once

#include <string>

namespace kindred {

// ${KINDRED_HOME}, else $HOME/.cache/kindred.
std::string kindred_home();

// File name of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF).
inline constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

// File name of Gemma 3 270M (Q4_K_M GGUF, scripts/fetch-gemma3-270m), alias `gemma3-270m`.
inline constexpr const char* kGemma3_270mFile = "gemma-3-270m-q4_k_m.gguf";

// "default" -> <kindred_home>/models/<kDefaultModelFile>, "gemma3-270m" -> .../<kGemma3_270mFile>;
// anything else unchanged. Throws Error telling how to fetch it when an alias's file is missing.
std::string resolve_model_path(const std::string& model);

}  // namespace kindred
