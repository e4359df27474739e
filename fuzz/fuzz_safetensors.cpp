// fuzz/fuzz_safetensors.cpp — libFuzzer entry for the safetensors reader: any byte string must
// parse or throw kindred::Error; anything else (a crash, a sanitizer report, another exception,
// a hang) is a bug. Parsed files are walked so every span the reader hands out is read once.
// Seed corpus: tests/corpus/safetensors-malformed and tests/goldens/safetensors.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto file =
            kindred::safetensors::File::parse(std::span<const std::uint8_t>(data, size), "fuzz.safetensors");
        std::uint8_t sum = 0;
        for (const auto& tensor : file.tensors()) {
            for (const std::uint8_t byte : tensor.data) sum = static_cast<std::uint8_t>(sum + byte);
            if (file.find(tensor.name) != &tensor) __builtin_trap();  // index must agree with the list
        }
        volatile std::uint8_t sink = sum;
        (void)sink;
    } catch (const kindred::Error&) {
    }
    return 0;
}
