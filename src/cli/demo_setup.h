// cli/demo_setup.h — what `kindred demo` runs and where it finds its inputs: the two presets
// (full and --quick), the Kindred folder holding configs/demo*.yaml and data/samples, the EQ-Bench v2
// questions file, the held-out prompts of the side-by-side comparison, and the base-vs-SFT metric
// rows of the report. cmd_demo.cpp runs the stages; this file decides what they are given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "eval/report.h"
#include "text/chat_template.h"
#include "train/dev_eval.h"
#include "train/dpo.h"

namespace kindred::cli {

struct DemoPlan {
    bool quick = false;
    std::string recipe;            // file name under <root>/configs
    std::size_t eqbench_limit = 0;  // first N questions (0 = all 171)
    std::size_t side_by_side = 0;   // held-out prompts answered by both models
    std::int64_t reply_tokens = 0;  // tokens per side-by-side and safety-sheet reply
    std::string dpo_recipe;         // the preference stage's recipe under <root>/configs
};

DemoPlan demo_plan(bool quick);

// The Kindred folder (configs/demo.yaml and data/samples/ both inside): $KINDRED_ROOT when set
// (an Error if it lacks them), else the nearest folder holding them walking up from the running
// executable (build/src/cli/kindred finds the checkout it was built in), else walking up from the
// current directory. Error listing what was searched when none has them.
std::string find_demo_root();

// The EQ-Bench v2 questions: `given` when not empty (must exist), else the first
// eq_bench_v2_questions*.json (sorted) in $KINDRED_HOME/eqbench-v2/ (the product reads files from
// paths the user gives or that documented place only). nullopt when none is found; `searched` lists
// the folders looked in, for the report.
std::optional<std::string> find_eqbench_questions(const std::string& given,
                                                  std::vector<std::string>& searched);

// The corpus the demo trains on: the bundled samples (<root>/data/samples/, `data` empty), or the
// releases `kindred data fetch` put in `data`: each of empatheticdialogues/, esconv/ESConv.json
// and goemotions/ that is there (an Error naming the folder when none is). `description` says
// which, for the report.
struct DemoData {
    data::PrepareOptions sources;  // empathetic_dialogues, esconv, goemotions set
    std::string description;
};
DemoData demo_data(const std::string& root, const std::string& data);

// A fetched corpus's dev split holds thousands of examples, grouped by source: the demo scores
// `count` of them spaced evenly through it (every source represented, in order), so that its dev
// evaluations take about the time the samples' do. All of them when there are at most `count`.
std::vector<train::TokenizedExample> evenly_spaced(std::span<const train::TokenizedExample> examples, std::size_t count);

// "demo-20261126-021400" (UTC), "-quick" appended for the quick preset.
std::string demo_run_id(bool quick);

// The side-by-side prompts: from a prepared test.jsonl, the first `count` EmpatheticDialogues
// conversations cut after their first user message (system message kept: the persona the model was
// trained with), so both models answer the opening of a conversation neither saw in training.
// `emotions`, when given, receives each prompt's emotion-head labels (for the error taxonomy's
// "wrong feeling").
std::vector<std::vector<text::ChatMessage>> held_out_prompts(const std::string& test_jsonl, std::size_t count,
                                                             std::vector<std::vector<std::string>>* emotions = nullptr);

// Base vs SFT rows of the report. The base model has no heads, so its head metrics are NaN ("—")
// with the chance level in the note; NLL and the safety KL are measured on both. With `dpo`, each
// row also carries the SFT+DPO model's value (its heads are the SFT heads, carried through DPO).
std::vector<eval::MetricRow> metric_rows(const train::DevMetrics& base, const train::DevMetrics& sft,
                                         const train::DevMetrics* dpo = nullptr);

// The dev-pair rows of the three models: the reference-free preference accuracy (share of dev
// pairs with log π(y+|x) > log π(y−|x)) for all three, and DPO's reward accuracy, margin and loss
// against the SFT reference (not defined for SFT itself, whose rewards are 0 by construction).
std::vector<eval::MetricRow> preference_rows(const train::DpoDevMetrics& base, const train::DpoDevMetrics& sft,
                                             const train::DpoDevMetrics& dpo);

}  // namespace kindred::cli
