// fuzz/fuzz_safety_rules.cpp — libFuzzer entry for the safety rules reader (data/safety_rules.h):
// arbitrary bytes must parse or throw kindred::Error; a file that parses is then run through the
// detector and the referral check over its own text, which must not throw at all.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "data/safety_rules.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const kindred::data::SafetyRules rules = kindred::data::SafetyRules::parse(text, "fuzz.rules");
        rules.detect(text, text);
        rules.refers_to_help(text);
    } catch (const kindred::Error&) {
    }
    return 0;
}
