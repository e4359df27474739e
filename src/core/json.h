// core/json.h — parsing untrusted JSON (tokenizer.json, config.json, safetensors headers, index
// files, benchmark data) one way everywhere: every failure is an Error naming the file, nesting
// is bounded so that recursive walkers above cannot exhaust the stack, and a key given twice in
// one object is refused (nlohmann would keep the last one silently, letting one tensor or
// vocabulary entry hide another).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kindred {

// Far deeper than any file these parsers read (tokenizer.json nests about 6 levels).
inline constexpr int kDefaultJsonDepth = 64;

// `name` (usually the path) starts every message: "<name>: invalid JSON: ...",
// "<name>: JSON nested deeper than N levels", "<name>: key 'k' appears twice".
nlohmann::json parse_json(std::string_view text, const std::string& name, int max_depth = kDefaultJsonDepth);

// read_file_text (core/mapped_file.h) then parse_json.
nlohmann::json read_json_file(const std::string& path, std::uintmax_t max_bytes, int max_depth = kDefaultJsonDepth);

}  // namespace kindred
