// fuzz/fuzz_tokenizer_json.cpp — libFuzzer entry for Tokenizer::from_hf_json: any byte string
// must load or throw kindred::Error; anything else (a crash, a sanitizer report, another
// exception, a hang, an allocation out of proportion to the input) is a bug. A tokenizer that
// loads encodes its own input and bytes valid JSON cannot hold, so its derived tables are read.
// Input layout: tokenizer.json bytes, optionally followed by "\n\x01\n" and tokenizer_config.json.
// Seeds: tests/corpus/tokenizer-malformed plus small valid byte-level files (all 256 byte tokens, a
// few merges, added tokens with each flag, each normalizer, Split behaviour and merge spelling, as
// tests/text/test_tokenizer.cpp's tiny_tokenizer_json builds them) and the smallest valid
// byte_fallback BPE, tests/goldens/tokenizer/byte_fallback/fuzz_seed.json (Prepend + Replace, a Strip
// decoder; the corpus's bf_*.json files spell the Metaspace and decoder variants). The hostile text
// below reaches byte_fallback's <0xXX> pieces with invalid and truncated UTF-8. The real ../shared
// tokenizers (11 and 27 MB) are worth one pass as inputs but too large to mutate. Run with
//   fuzz_tokenizer_json CORPUS -max_len=8192 -timeout=10 -malloc_limit_mb=128 -max_total_time=600
// and add each finding to tests/corpus/tokenizer-malformed with its phrase in EXPECTED.json.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    constexpr std::string_view kSeparator = "\n\x01\n";
    std::string_view json = input;
    std::optional<std::string_view> config;
    if (const std::size_t at = input.find(kSeparator); at != std::string_view::npos) {
        json = input.substr(0, at);
        config = input.substr(at + kSeparator.size());
    }
    try {
        const auto tokenizer = kindred::text::Tokenizer::from_hf_json(json, config, "fuzz-tokenizer.json");
        // The input's own prefix (bounded, so a huge input is not a slow encode of itself),
        // then bytes valid JSON cannot hold: invalid and truncated UTF-8, NFC-changing marks.
        std::string text(input.substr(0, 512));
        constexpr char kHostile[] = "a\xFF b\xC3\xA9" "e\xCC\x81 \xF0\x9F\x98\xA2\xE2\x82 12345 \0\t\n \xC3";
        text.append(kHostile, sizeof kHostile - 1);
        for (const bool special : {true, false}) {
            const auto encoding = tokenizer.encode_with_spans(text, special);
            if (encoding.ids.size() != encoding.spans.size()) __builtin_trap();
            for (const auto& [begin, end] : encoding.spans) {
                if (begin > end || end > text.size()) __builtin_trap();
            }
            (void)tokenizer.decode(encoding.ids);
        }
        (void)tokenizer.summary();
    } catch (const kindred::Error&) {
    }
    return 0;
}
