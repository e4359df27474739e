// fuzz/fuzz_gguf.cpp — libFuzzer entry for the GGUF reader: any byte string must parse or
// throw kindred::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
// Parsed files are also walked so that every span the reader hands out is read once.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto file = kindred::gguf::File::parse(std::span<const std::uint8_t>(data, size), "fuzz.gguf");
        std::uint8_t sum = 0;
        for (const auto& tensor : file.tensors()) {
            for (const std::uint8_t byte : tensor.data) sum = static_cast<std::uint8_t>(sum + byte);
        }
        volatile std::uint8_t sink = sum;
        (void)sink;
    } catch (const kindred::Error&) {
    }
    return 0;
}
