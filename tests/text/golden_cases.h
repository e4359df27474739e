// tests/text/golden_cases.h — a tokenizer against golden cases a reference wrote (transformers or the
// tokenizers package): {"text", "ids", "ids_specials_as_text" when it differs, "decoded" when decode
// does not give the text back}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "text/tokenizer.h"

namespace kindred::testing {

// Ids with control tokens parsed and as text equal the golden's, and with check_decoded decode(ids)
// equals "decoded" (default: the text); the first five mismatches are reported. Returns the number
// of cases checked.
inline std::size_t expect_golden_cases(const text::Tokenizer& tokenizer, const nlohmann::json& cases,
                                       const std::string& reference, bool check_decoded) {
    using Ids = std::vector<std::int32_t>;
    std::size_t checked = 0, mismatched = 0;
    for (const auto& c : cases) {
        const std::string text = c["text"].get<std::string>();
        const Ids expected = c["ids"].get<Ids>();
        const Ids as_text = c.value("ids_specials_as_text", expected);
        const std::string decoded = c.value("decoded", text);
        const Ids got = tokenizer.encode(text);
        const Ids got_as_text = tokenizer.encode(text, false);
        const std::string got_decoded = check_decoded ? tokenizer.decode(got) : decoded;
        if ((got != expected || got_as_text != as_text || got_decoded != decoded) && ++mismatched <= 5) {
            ADD_FAILURE() << "text: " << nlohmann::json(text).dump() << "\n  kindred: " << nlohmann::json(got).dump()
                          << "\n  " << reference << ": " << nlohmann::json(expected).dump()
                          << "\n  as text, kindred: " << nlohmann::json(got_as_text).dump()
                          << "\n  as text, " << reference << ": " << nlohmann::json(as_text).dump()
                          << "\n  decoded, kindred: " << nlohmann::json(got_decoded).dump()
                          << "\n  decoded, " << reference << ": " << nlohmann::json(decoded).dump();
        }
        ++checked;
    }
    EXPECT_EQ(mismatched, 0u) << "of " << checked;
    return checked;
}

}  // namespace kindred::testing
