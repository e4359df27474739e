// fuzz/fuzz_preference_pairs.cpp — libFuzzer entry for train::parse_pair_line, the reader of
// preference pairs (Kindred's and TRL's prompt/chosen/rejected JSONL): every line of any byte
// string must parse or throw kindred::Error, and a parsed conversational pair must write back to a
// line that parses to the same completions.
// Seeds: tests/corpus/pairs-malformed/ plus pairs written by `kindred pairs build` (fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "train/preference_pairs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::size_t number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        ++number;
        try {
            const auto pair = kindred::train::parse_pair_line(line, "fuzz.jsonl", number);
            if (pair.conversational) {
                const auto again = kindred::train::parse_pair_line(kindred::train::pair_json_line(pair), "again", 1);
                // A parsed line holds valid UTF-8 (the JSON parser refuses anything else), so the
                // written line must read back to the same pair.
                if (again.chosen != pair.chosen || again.rejected != pair.rejected || again.prompt.size() != pair.prompt.size())
                    std::abort();
            }
        } catch (const kindred::Error&) {
        }
    }
    return 0;
}
