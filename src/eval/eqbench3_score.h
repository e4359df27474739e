// eval/eqbench3_score.h — EQ-Bench 3's scoring, reproduced from the official harness
// (github EQ-bench/eqbench3 at 3c21bcc) and checked against it on a fixed synthetic set of judge
// answers (tools/goldens/eqbench3_official.py, tests/eval/test_eqbench3_goldens.cpp):
//
// Rubric (conversation.py _parse_rubric_scores, benchmark.py calculate_final_rubric_score).
//   The judge's answer goes through robust_json_loads; every key whose value is a number (a
//   JSON true/false counts as 1/0, as Python's bool is an int) is a score; any other value except
//   chain_of_thought_reasoning's has its first `\b\d+(\.\d+)?\b` in str(value) taken ("15/20" ->
//   15; digits of any script, like Python's \d). No object, an empty one, or no score at all is
//   unparseable. A task's score is the mean of the scores of the criteria that count: for
//   role-play/drafting/no-role-play the six "higher is better" ones of the rubric prompt
//   (demonstrated_empathy, pragmatic_ei, depth_of_insight, social_dexterity,
//   emotional_reasoning, message_tailoring) plus four analysis names the harness's list also
//   holds (theory_of_mind, subtext_identification, intellectual_grounding, correctness: counted
//   if a judge volunteers them); the twelve style criteria (boundary_setting ... humanlike) are
//   recorded but left out, and none is inverted. For analysis tasks every criterion of
//   rubric_scoring_criteria_analysis.txt counts; overall_eq would weigh 3 (no file asks for it).
//   Scores are not clamped to 0-20 (the harness does not; eqbench3_task_score reports how many
//   fell outside). The run's score is round(mean of task scores, 2) on 0-20, shown x5 on 0-100.
//   Deviation: a NaN or infinite score (json.loads accepts NaN/Infinity) makes the answer
//   unparseable here instead of turning the whole run's score into NaN.
//
// Pairwise (pairwise_judging.py, elo_helpers.py, trueskill_solver.py, elo_config.py).
//   Each criterion's value is a string such as "A0493++"; its count of '+' goes to A0493 when the
//   code A0493 occurs in it, else to A0488 when that code does. The side with more pluses wins
//   (equal: 0.5). For analysis scenarios (numeric id >= 400) the counts shrink to 1-0, 0-1 or
//   0-0. A comparison's fraction for the test model is 0.5 + min(|diff| / 30, 1) / 2 for a win,
//   one minus that for a loss (custom_blend is the identity). The solver groups both orders of
//   one (pair, scenario, iteration), sums their plus counts per model, and turns the group's
//   fraction into pseudo-matches: ceil(|fraction - 0.5| / (0.5 / bin)) wins (1 .. bin) for the
//   winner, or one draw at exactly 0.5; bin = 20 for the rating, 5 for the sigma (its CI).
//   TrueSkill: mu 1200, sigma 350/3, beta 350/6, tau 0, draw probability 0, every model
//   starting fresh, updates applied in the order the groups first appear; the trueskill
//   package's own erfc approximation is reproduced, so ratings agree to rounding.
//   Normalisation maps o3 -> 1500 and meta-llama/llama-3.2-1b-instruct -> 200 linearly, and
//   only when both anchors are among the rated models; otherwise ratings stay raw.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eval/eqbench3.h"
#include "eval/eqbench3_json.h"

namespace kindred::eval {

using Eqb3Scores = std::vector<std::pair<std::string, double>>;  // judge order

// nullopt when the answer is unparseable (see above).
std::optional<Eqb3Scores> eqbench3_parse_rubric(std::string_view judge_answer);

// The criteria that count for a task of `kind` (analysis: the analysis criteria file's names).
std::vector<std::string> eqbench3_counted_criteria(Eqb3Kind kind, const std::vector<std::string>& analysis_criteria);

struct Eqb3TaskScore {
    std::optional<double> score;     // 0-20 mean over the counted criteria present; none present: nullopt
    std::size_t counted = 0;         // counted criteria the judge gave
    std::size_t missing = 0;         // counted criteria it left out
    std::size_t out_of_range = 0;    // counted scores outside [0, 20] (kept, as the harness keeps them)
};
Eqb3TaskScore eqbench3_task_score(const Eqb3Scores& scores, Eqb3Kind kind, const std::vector<std::string>& analysis_criteria);

// round(mean(task scores), 2) on 0-20 (Python's round: the exact binary value, ties to even);
// nullopt for no task.
std::optional<double> eqbench3_rubric_score(const std::vector<double>& task_scores);

// --- pairwise ---------------------------------------------------------------------------------

// robust_json_loads of a pairwise answer; nullopt unless it is a non-empty object.
std::optional<PyValue> eqbench3_parse_pairwise(std::string_view judge_answer);

struct Eqb3PlusCounts {
    double outcome_for_a = 0.5;  // 1 A0493 won, 0 A0488 won, 0.5 tie
    std::int64_t plus_a = 0;
    std::int64_t plus_b = 0;
};
Eqb3PlusCounts eqbench3_interpret_pairwise(const PyValue& judgement);

struct Eqb3Fraction {
    double fraction = 0.5;       // for the test model
    std::int64_t diff = 0;
    double diff_norm = 0.0;
};
Eqb3Fraction eqbench3_fraction_for_test(double outcome_for_test, std::int64_t plus_test, std::int64_t plus_other);

// One judged order of one matchup, from the test model's side.
struct Eqb3Comparison {
    std::string test_model;
    std::string other_model;
    std::string scenario_id;
    std::string iteration = "1";
    bool test_is_a = true;  // "A0493:test / A0488:other" (forward); false for the reversed order
    double outcome_for_test = 0.5;
    std::int64_t plus_test = 0;
    std::int64_t plus_other = 0;
    double fraction_for_test = 0.5;
};
// The record the harness stores for one judged order (downscaling analysis ids >= 400).
Eqb3Comparison eqbench3_comparison(std::string test_model, std::string other_model, std::string scenario_id, std::string iteration,
                                   bool test_is_a, const PyValue& judgement);

// bin_fraction: (wins for the test model, wins for the other); (1, 1) is one draw.
std::pair<int, int> eqbench3_bin_fraction(double fraction, int bin_size);

struct Eqb3Rating {
    double mu = 1200.0;
    double sigma = 350.0 / 3.0;
};

inline constexpr int kEqBench3RatingBins = 20;
inline constexpr int kEqBench3SigmaBins = 5;

// solve_with_trueskill over `models` (each starts at mu 1200, sigma 350/3).
std::map<std::string, Eqb3Rating> eqbench3_solve_trueskill(const std::vector<std::string>& models,
                                                           const std::vector<Eqb3Comparison>& comparisons, int bin_size);

// The per-group fractions the solver uses, in its order: (model1, model2, scenario, iteration)
// with model1 < model2 and the fraction for model1. Exposed for the goldens.
struct Eqb3GroupFraction {
    std::string model1;
    std::string model2;
    std::string scenario_id;
    std::string iteration;
    double fraction = 0.5;
};
std::vector<Eqb3GroupFraction> eqbench3_group_fractions(const std::vector<Eqb3Comparison>& comparisons);

struct Eqb3Elo {
    double elo = 1200.0;   // mu of the bin-20 solve
    double sigma = 0.0;    // sigma of the bin-5 solve
    double ci_low = 0.0;   // elo -+ 1.96 sigma
    double ci_high = 0.0;
    std::optional<double> elo_norm;  // with both anchors only
    std::optional<double> ci_low_norm;
    std::optional<double> ci_high_norm;
};
// The final solve of run_elo_analysis_eqbench3 (two solves, CI, normalisation when possible).
std::map<std::string, Eqb3Elo> eqbench3_elo(const std::vector<std::string>& models, const std::vector<Eqb3Comparison>& comparisons);

// normalize_elo_scores with the official anchors; nullopt when either is missing.
struct Eqb3Normalisation {
    double scale = 1.0;
    double shift = 0.0;
};
std::optional<Eqb3Normalisation> eqbench3_normalisation(const std::map<std::string, double>& raw);
inline constexpr std::string_view kEqBench3AnchorHigh = "o3";                                // -> 1500
inline constexpr std::string_view kEqBench3AnchorLow = "meta-llama/llama-3.2-1b-instruct";  // -> 200

// The trueskill package's default-backend cdf (its erfc approximation), exposed for tests.
double trueskill_cdf(double x);

}  // namespace kindred::eval
