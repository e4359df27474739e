// fuzz/fuzz_controller_prompts.cpp — libFuzzer entry for the controller prompt-set reader
// (eval/controller_eval.h): arbitrary bytes must parse or throw kindred::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "eval/controller_eval.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        kindred::eval::parse_controller_prompts(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.jsonl");
    } catch (const kindred::Error&) {
    }
    return 0;
}
