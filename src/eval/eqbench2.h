// eval/eqbench2.h — EQ-Bench v2 (judge-free): questions, the prompt as the official harness sends it
// (v2.1 default: revision step removed), answer parsing and the official fullscale scoring.
// Facts follow github EQ-bench/EQ-Bench lib/run_bench_helper_functions.py, lib/eq_bench_utils.py and
// lib/scoring.py; see docs/eval.md for the few places where this port must choose.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::eval {

struct EqBench2Question {
    std::string id;
    std::string prompt;                        // as stored, with the revision instructions
    std::array<std::string, 4> emotions;       // reference_answer_fullscale emotion1..4
    std::array<double, 4> reference_scores{};  // reference_answer_fullscale emotionN_score
};

// Reads the questions file (a JSON object: id -> {prompt, reference_answer, reference_answer_fullscale}).
// Throws Error naming the file, question id and field at fault. Questions come in id order, numeric
// ids by value ("2" before "10") and before other ids: the released file's order, which the
// harness walks (the JSON parser keeps no key order, so file order itself is not available).
std::vector<EqBench2Question> load_eqbench2_questions(const std::string& path);

// The prompt the harness sends for v2 without revision: critique and revised-score parts cut out,
// "Your answer:" appended.
std::string eqbench2_prompt(const EqBench2Question& question);

// Generation settings of the harness: 60 completion tokens, temperature 0.01, and up to
// kEqBench2Attempts tries (eqbench2_run.h) with the temperature raised by 0.15 after each
// unparseable answer.
inline constexpr int kEqBench2CompletionTokens = 60;
inline constexpr double kEqBench2Temperature = 0.01;
inline constexpr double kEqBench2RetryTemperatureStep = 0.15;

// `name: digits` pairs of an answer, in the order the harness's regex finds them; a later pair with
// the same name replaces an earlier one (the harness builds a Python dict).
std::map<std::string, double> parse_eqbench2_answer(std::string_view answer);

// The harness's question score, 10 - 0.7477 * sum of penalties, or nullopt when the answer is
// unparseable: not exactly four names, names not the four reference emotions, or all scores zero.
std::optional<double> score_eqbench2_answer(const EqBench2Question& question, const std::map<std::string, double>& parsed);

struct EqBench2QuestionResult {
    std::string id;
    std::optional<double> score;
    std::string answer;  // the raw answer text that was scored
    int attempts = 1;    // generations asked for (eqbench2_run.h); 1 for given answers
};

struct EqBench2Result {
    double score = 0.0;               // 100 * mean(question score) / 10 over parseable answers
    double parseable_fraction = 0.0;  // parseable / n
    std::size_t n = 0;
    std::size_t parseable = 0;
    std::vector<EqBench2QuestionResult> questions;
};

// The benchmark must be rejected when fewer answers than this fraction parse (official rule).
inline constexpr double kEqBench2MinParseableFraction = 0.8333;

// The benchmark numbers over scored questions (n = questions.size()); the harness's rounding.
EqBench2Result summarize_eqbench2(std::vector<EqBench2QuestionResult> questions);

// Scores raw answer texts keyed by question id, in the questions' order; an id not among the
// questions is an Error.
EqBench2Result score_eqbench2_answers(const std::vector<EqBench2Question>& questions,
                                      const std::map<std::string, std::string>& answers);

}  // namespace kindred::eval
