// fuzz/fuzz_trained_styles.cpp — libFuzzer entry for an adapter's styles.json reader (data/style.h):
// arbitrary bytes must parse or throw kindred::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "data/style.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        kindred::data::parse_trained_styles(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz-styles.json");
    } catch (const kindred::Error&) {
    }
    return 0;
}
