// train/ablate.h — `kindred ablate --config RECIPE.yaml`: the seed's ablation matrix. Each variant
// trains the SFT recipe with one switch changed, then (unless it ablates DPO) the DPO recipe on the
// same preference pairs, with the same seed, data and step budgets, and is measured on the same dev
// split; one table and charts compare them (docs/dpo.md).
//
// Variants (in this order): full (SFT with every head and the safety KL, then DPO), no_emotion_head
// (heads.emotion=false), no_strategy_head (heads.strategy=false), no_safety_kl
// (safety.enabled=false), no_dpo (the full SFT model, no preference stage).
//
// The ablation recipe:
//   name: ablate                 # the output folder's name under output.dir
//   output: {dir: runs}
//   sft: configs/demo.yaml       # the SFT recipe (its data.path/dev_path: `kindred data prepare` output)
//   dpo: configs/demo-dpo.yaml   # the DPO recipe (its pairs.* settings make the pairs)
//   variants: [full, no_emotion_head, no_strategy_head, no_safety_kl, no_dpo]   # default: all
//   sft_overrides: []            # key=value applied to every variant's SFT recipe (e.g. a step budget)
//   dpo_overrides: []            # likewise for the DPO recipe
// Under <output.dir>/<name>/: <variant>-sft/ and <variant>-dpo/ run folders, pairs/ (built once,
// with the full variant's SFT adapter as the sampler, so every variant's DPO sees the same pairs),
// ablation.md (the table), ablation.json (the rows) and the charts ablation_dev_nll.svg (dev NLL
// over the SFT steps) and ablation_rewards.svg (DPO reward accuracy over the DPO steps).
// A variant whose run folders already hold a finished adapter is measured, not trained again, so
// an interrupted matrix resumes where it stopped.
//
// Metrics per variant, all on the SFT recipe's dev split and the dev pairs, of the variant's final
// model (SFT+DPO, or SFT for no_dpo): dev NLL, emotion macro-F1, strategy accuracy, VA MSE, safety
// KL (train/dev_eval.h); the reference-free preference accuracy (share of dev pairs with
// log π(y+) > log π(y−)), comparable across variants; and for DPO variants the reward accuracy and
// margin against the variant's own SFT reference (TRL's eval metrics).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "eval/report.h"
#include "train/dev_eval.h"
#include "train/dpo.h"

namespace kindred::train {

struct AblationVariant {
    std::string name;
    std::string description;
    std::vector<std::string> sft_overrides;  // recipe key=value
    bool dpo = true;
};

// The seed's matrix, in the order above.
const std::vector<AblationVariant>& ablation_variants();

struct AblationSettings {
    std::string name = "ablate";
    std::string output_dir = "runs";
    std::string sft_recipe;
    std::string dpo_recipe;
    std::vector<std::string> variants;  // names from ablation_variants(), in that order
    std::vector<std::string> sft_overrides, dpo_overrides;  // applied to every variant, before its own
};

// Reads the ablation recipe (every key; errors name key and line); both recipe files must exist
// and `variants` must name known variants, `full` first when DPO variants are asked for.
AblationSettings read_ablation_settings(Config& config);

struct AblationRow {
    std::string variant;
    DevMetrics dev;                 // the final model's
    double preference_accuracy = NAN;
    std::optional<DpoDevMetrics> dpo;  // DPO variants: the final dev pair metrics vs their reference
    double seconds = 0.0;           // training and measuring this variant (0 when all reused)
    bool reused = false;
};

struct AblationPlan {
    std::size_t variants = 0, sft_runs = 0, dpo_runs = 0;
    std::int64_t sft_rows = 0, dpo_rows = 0;  // training rows over the matrix
    std::int64_t sft_steps = 0, dpo_steps = 0;
    std::size_t pair_prompts = 0;
};

// What the matrix trains (before anything runs), and the expected wall time from a measured cost
// of one training row of max_seq_len tokens (forward and backward) on this machine.
std::string expected_time_text(const AblationPlan& plan, double seconds_per_row, double seconds_per_sampled_token);

// The table of the rows (what ablation.md holds and the report shows).
eval::Table ablation_table(const std::vector<AblationRow>& rows);
nlohmann::json to_json(const AblationRow& row);
AblationRow ablation_row_from_json(const nlohmann::json& json, const std::string& where);

// Runs the matrix (see above); `log` gets one line per stage. Returns the rows in variant order and
// writes ablation.md, ablation.json and the charts.
std::vector<AblationRow> run_ablation(const AblationSettings& settings, const std::function<void(const std::string&)>& log);

}  // namespace kindred::train
