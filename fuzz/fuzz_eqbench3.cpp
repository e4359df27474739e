// fuzz/fuzz_eqbench3.cpp — libFuzzer entry for EQ-Bench 3's untrusted readers: the scenario
// prompts file, the notes and criteria files, and judge answers (robust_json_loads with its
// repairs, the rubric and pairwise readings, str() of what was parsed), plus the section regexes
// and <think> stripping applied to model replies. Each must succeed or throw kindred::Error;
// readings that return "unparseable" must not throw at all.
// Input layout: byte 0 picks the reader, the rest is its text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "eval/eqbench3.h"
#include "eval/eqbench3_json.h"
#include "eval/eqbench3_score.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kindred::eval;
    if (size < 1) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        switch (data[0] % 5) {
            case 0: {
                const Eqb3Scenarios scenarios = parse_eqbench3_scenarios(text, "fuzz");
                for (const auto& s : scenarios.kept) {
                    if (s.prompts.empty()) __builtin_trap();  // a kept scenario always has a turn
                }
                break;
            }
            case 1: (void)parse_eqbench3_notes(text); break;
            case 2: (void)parse_eqbench3_criteria(text, "fuzz"); break;
            case 3: {
                if (const auto scores = eqbench3_parse_rubric(text)) {
                    (void)eqbench3_task_score(*scores, Eqb3Kind::RolePlay, {"depth_of_insight"});
                }
                if (const auto judgement = eqbench3_parse_pairwise(text)) {
                    const auto c = eqbench3_comparison("a", "b", "401", "1", true, *judgement);
                    if (c.fraction_for_test < 0.0 || c.fraction_for_test > 1.0) __builtin_trap();
                    (void)python_str(*judgement);
                }
                (void)robust_json_loads(text, "fuzz");
                break;
            }
            default: {
                (void)eqbench3_parse_sections(text, Eqb3Kind::RolePlay);
                (void)eqbench3_parse_sections(text, Eqb3Kind::Drafting);
                (void)eqbench3_strip_reasoning(std::string(text));
                (void)python_strip(text);
                break;
            }
        }
    } catch (const kindred::Error&) {
    }
    return 0;
}
