// train/tune.h — λ tuning on dev (`kindred tune`): short SFT trials over a grid of loss weights,
// each scored by one dev objective J, the best written back as a plain training recipe. The search
// is a library call over a `run_trial` callback, so the search, the files and the resume logic are
// tested without training; cli/cmd_tune.cpp supplies the callback that really trains.
//
// The recipe's `tune:` section (docs/tuning.md). `tune.grid` mirrors the recipe tree: each leaf is a
// list of candidate values for the recipe key at the same path, and only the λ keys under
// `objective.` may be tuned (kTunableKeys). The contract's sketch wrote `objective.emotion:` as one
// map key, but recipe keys cannot contain '.' (core/config.h), so the grid nests like the recipe:
//   tune:
//     steps: 30            # optimisation.max_steps of every trial
//     search: grid         # grid | random
//     trials: 0            # random: number of distinct draws (required); grid: 0 (= every combination)
//     seed: 0              # random: the draw's seed
//     grid:
//       objective:
//         emotion: [0.0, 0.25, 0.5, 1.0]
//         strategy: [0.0, 0.5]
//
// Trials. Grid order is the cartesian product with the first axis (file order) varying slowest,
// like nested loops written in file order. Random search draws `trials` distinct combinations
// without replacement from the same grid with a seeded generator whose draws are specified here
// (mt19937_64 and rejection sampling), so the same seed gives the same trials on every platform;
// asking for more draws than the grid holds is an Error (use grid search). Trial i is named
// trial-NNN (i from 0, at least three digits) and is the base recipe (the `tune` section removed)
// with the overrides `objective.<k>=<v>` per axis, `optimisation.max_steps=<tune.steps>`,
// `name=trial-NNN` and `output.dir=<out>`, so its run directory is <out>/trial-NNN.
//
// Dev objective (lower is better; it does not depend on λ, so trials with different weights are
// comparable): J = nll + (1 − emotion_macro_f1) + (1 − strategy_macro_f1) + va_mse. A term enters J
// when any successful trial has its metric; a trial without it (its head off at λ = 0, say) is
// charged the worst value a trial got for it, so it cannot win on a metric it did not produce.
// Ties go to the earlier trial. A trial that throws is recorded as failed with its message and the
// search goes on; when every trial fails, or none has a metric J uses, run_tune throws Error.
//
// Files under <out>:
//   trials.jsonl  one record per trial, appended as each ends: trial, name, lambda {key: value},
//                 steps, recipe (hash of the trial recipe), status "ok"/"failed", error, wall_s,
//                 dev (DevMetrics json), objective (J over that trial's own metrics; the table's J
//                 uses the search's common terms and can differ when trials have different metrics)
//   trials.md     the table of trials sorted by J (failed ones last), the chosen row marked
//   best.yaml     the base recipe with the chosen λ set and no `tune` section: a training recipe
// Resume: rerunning with the same out reuses every successful record whose trial number, λ, steps
// and recipe hash equal the plan's (same settings → same plan); other records are dropped from
// trials.jsonl and those trials run again (failed trials always run again).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"
#include "train/dev_eval.h"

namespace kindred::train {

// The recipe keys a tune grid may vary: the λ of each loss term.
inline constexpr std::array<std::string_view, 5> kTunableKeys = {
    "objective.lm", "objective.emotion", "objective.strategy", "objective.valence_arousal", "objective.safety_kl"};

enum class TuneSearch { Grid, Random };

struct TuneSpace {
    std::vector<std::pair<std::string, std::vector<double>>> axes;  // recipe key, candidate values
    // Number of combinations (the product of the axis sizes).
    std::size_t size() const;
};

struct TuneSettings {  // the recipe's `tune:` section
    std::int64_t steps = 30;
    TuneSpace space;
    TuneSearch search = TuneSearch::Grid;
    std::int64_t trials = 0;
    std::uint64_t seed = 0;
};

// Reads and validates `tune.*` (every key read, so the same Config can go on to read_sft_recipe and
// finish()). Errors name the key and its file and line (or override): a grid key outside
// kTunableKeys (with the nearest tunable key), an empty or non-numeric list, a negative or
// non-finite value, a value listed twice, a missing grid, steps < 1, an unknown search, trials
// with grid search, random search without trials or with more trials than the grid holds, a grid
// of more than kMaxTuneTrials combinations.
inline constexpr std::size_t kMaxTuneTrials = 100000;
TuneSettings read_tune_settings(Config& config);

// The λ values (one per axis, axis order) of every trial, in trial order (see above).
std::vector<std::vector<double>> plan_trials(const TuneSettings& settings);

// `yaml` (a recipe, e.g. Config::dump()) without its top-level `tune` section. Comments are lost.
std::string without_tune_section(std::string_view yaml, const std::string& source);

struct TrialSpec {
    std::size_t index = 0;
    std::string name;                                      // trial-NNN
    std::vector<std::pair<std::string, double>> lambdas;   // axis key, value (axis order)
    std::string recipe_yaml;                               // the base recipe, no `tune` section
    std::string recipe_source;                             // names the recipe in messages
    std::vector<std::string> overrides;                    // objective.*, max_steps, name, output.dir
    std::string run_dir;                                   // <out>/<name>
    // The trial's recipe: recipe_yaml with the overrides applied (read it with read_sft_recipe).
    Config config() const;
};

struct TrialRecord {
    std::size_t index = 0;
    std::string name;
    std::vector<std::pair<std::string, double>> lambdas;
    DevMetrics dev;          // all NaN when the trial failed
    double objective = NAN;  // J over the search's common terms; NaN when failed
    double wall_s = 0.0;
    std::string error;       // the failure message; empty when the trial succeeded
    bool reused = false;     // taken from an earlier run's trials.jsonl
    bool failed() const { return !error.empty(); }
};

struct TuneOptions {
    std::string recipe_yaml;    // the base recipe (a `tune` section in it is removed)
    std::string recipe_source;  // e.g. the recipe path
    TuneSettings settings;
    std::string out_dir;        // created when missing
    // Called after each trial (reused ones included) with the trials done so far and the total.
    std::function<void(const TrialRecord& trial, std::size_t done, std::size_t total)> on_trial;
};

struct TuneResult {
    std::vector<TrialRecord> trials;  // in trial order
    std::size_t best = 0;             // index into trials
    std::vector<std::string> terms;   // J's terms, e.g. {"nll", "1 - emotion_macro_f1"}
    std::string best_yaml;            // best.yaml's text
};

// One trial's J over the terms its metrics have (NaN when it has none).
double dev_objective(const DevMetrics& metrics);

// J of each of a search's successful trials over the terms any of them has, a missing term
// charged the worst value of that term among them (see above); also returns the terms' names.
std::vector<double> dev_objectives(std::span<const DevMetrics> trials, std::vector<std::string>* terms = nullptr);

// The trials run_tune runs, in order (for checks before the search: each spec's config() must be a
// valid training recipe).
std::vector<TrialSpec> trial_specs(const TuneOptions& options);

// Runs the search (see above): run_trial trains trial spec.index into spec.run_dir and returns its
// final dev metrics. Writes trials.jsonl as it goes, then trials.md and best.yaml.
TuneResult run_tune(const TuneOptions& options, const std::function<DevMetrics(const TrialSpec&)>& run_trial);

// The markdown table trials.md holds (also printed by `kindred tune`).
std::string trials_table(const TuneResult& result);

}  // namespace kindred::train
