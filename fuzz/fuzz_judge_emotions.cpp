// fuzz/fuzz_judge_emotions.cpp — libFuzzer entry for the judge consistency check's answer reader
// (eval::parse_judge_emotions): any bytes must read as distinct, ascending GoEmotions ids or be
// refused with kindred::Error. The prompt builder is run over the same bytes as the comment.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "eval/judge_emotions.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const std::vector<int> ids = kindred::eval::parse_judge_emotions(text, "fuzz");
        if (ids.empty()) __builtin_trap();  // an empty list is refused, never read as no emotion
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (ids[i] < 0 || ids[i] > 27 || (i > 0 && ids[i] <= ids[i - 1])) __builtin_trap();
        }
    } catch (const kindred::Error&) {
    }
    (void)kindred::eval::judge_emotions_prompt(text);
    return 0;
}
