// eval/eqbench2_run.h — running EQ-Bench v2 on a model the way the official harness does
// (github EQ-bench/EQ-Bench, lib/eq_bench_utils.py process_question and lib/run_query.py):
// each question's v2.1 prompt (eqbench2_prompt) is the single user message of a chat, rendered
// with the model's own chat template and its generation prompt, no system message of ours (the
// harness sends none on its chat-API paths; a template that inserts a default one, like SmolLM2's,
// still does); 60 completion tokens at temperature 0.01 with plain temperature sampling; an
// unparseable answer is asked again with the temperature raised by 0.15, at most kEqBench2Attempts
// times in all. Scoring is eqbench2.h's, so a run's answers rescored with --answers give the
// same numbers. The harness core takes the completion as a function, so retries can be tested
// without a model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "eval/eqbench2.h"

namespace kindred::infer { class LoadedModel; }

namespace kindred::eval {

// eq-bench.py passes n_question_attempts=3 to run_benchmark.
inline constexpr int kEqBench2Attempts = 3;

struct EqBench2RunOptions {
    std::size_t limit = 0;    // run the first `limit` questions only (0 = all); n is then `limit`
    std::uint64_t seed = 0;   // each (question, attempt) draws from its own stream derived from it
    bool progress = true;     // a progress line on stderr (core/progress.h)
    // Questions answered at once by the model (infer/batch.h): one forward decodes them all. The
    // answers are short and the prompts long (~400 tokens), so prefill dominates and 8 saved only
    // 7% of the wall time of 1 on 2 idle Zen 2 cores (docs/eval.md). Results are reproducible for
    // a given value, not across values (batched products may differ in the last bits).
    std::int64_t parallel = 8;
};

// The sampling seed of one draw: depends on (seed, id, attempt) only, so a --limit run reproduces
// the start of a full run, the order of items does not matter, and a resumed run draws what an
// uninterrupted one would (EQ-Bench 3 uses it per scenario and step).
std::uint64_t draw_seed(std::uint64_t seed, std::string_view id, int attempt);

// One completion for `prompt` (the user message) at `temperature`; `attempt` counts from 0.
// Returns the answer text as the harness keeps it (surrounding whitespace stripped).
using EqBench2Completion =
    std::function<std::string(const EqBench2Question& question, const std::string& prompt, double temperature, int attempt)>;

// The harness core: asks each question (file order, the first options.limit) until its answer
// parses or kEqBench2Attempts are spent, then scores like score_eqbench2_answers. Each
// EqBench2QuestionResult carries the answer that was scored (the last attempt's when none
// parsed) and the attempts used. Never fails for low parseability: the caller applies
// kEqBench2MinParseableFraction (eqbench2_passes), so what was measured can still be reported.
EqBench2Result run_eqbench2(const std::vector<EqBench2Question>& questions, const EqBench2Completion& complete,
                            const EqBench2RunOptions& options = {});

// The same with `model` (and its adapter, when it has one) generating the answers,
// options.parallel questions at a time, each in its own slot from its first attempt to its last
// (a retry reuses the cached prompt). Deterministic for a given seed, question file, parallel
// count and thread count.
EqBench2Result run_eqbench2(infer::LoadedModel& model, const std::vector<EqBench2Question>& questions,
                            const EqBench2RunOptions& options = {});

// The official validity rule: at least kEqBench2MinParseableFraction of the n answers parse.
bool eqbench2_passes(const EqBench2Result& result);

}  // namespace kindred::eval
