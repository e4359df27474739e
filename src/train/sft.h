// train/sft.h — the supervised fine-tuning loop as a library call: packed rows of tokenized
// conversations through model::TrainableDecoder, the multi-objective loss of the recipe
// (docs/training.md), clipping and AdamW over the adapter and the heads, the LR schedule. The run
// directory, checkpoints, exact resume (dropout stream included), progress bar and NaN policy are
// train/training_run.h's, shared with DPO. What SFT adds to them:
//   <run>/metrics.jsonl    per logged step: loss (the λ-weighted total), loss_lm, loss_emotion,
//                          loss_strategy, loss_va, loss_safety (null when the term is off or had
//                          nothing to count that step), target_tokens and the step's site counts
//                          emotion_sites, strategy_sites, va_sites; per dev evaluation
//                          {"step", "dev": {train/dev_eval.h's DevMetrics}}
//   <run>/adapter/         plus heads.safetensors/heads.json (model/heads.h) when a head is active
//   <run>/loss.svg, loss_components.svg, lr.svg, dev.svg
//
// One step: every loss term is normalised by its count over the WHOLE step (all micro-batches),
// counted from the StepBatch before the first backward, so gradient accumulation gives the same
// gradient as one large batch: NLL and KL by the step's target tokens, each head's loss by the
// step's sites carrying that head's label. A term with count 0 contributes nothing; an inactive
// term (weight 0 or switched off) is never computed, and with safety inactive no teacher exists.
// With every head and the KL inactive the step is exactly the plain SFT step (same operations, same
// order), so plain recipes give bit-identical results to before heads existed. Dev evaluation runs
// without dropout. The teacher's cache is not checkpointed: a resumed run recomputes it on demand
// (the teacher is frozen, so the values are the same).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "data/style.h"
#include "dist/communicator.h"
#include "model/decoder.h"
#include "train/chat_dataset.h"
#include "train/dev_eval.h"
#include "train/recipe.h"

namespace kindred::train {

struct SftOptions {
    std::string run_dir;        // created when missing
    bool resume = false;        // continue from <run_dir>/checkpoints (a fresh start when it has none)
    std::string base_model;     // recorded in the PEFT adapter_config.json
    std::int32_t pad_id = 0;
    // The system message the emotion examples share (ChatDatasetStats::emotion_system_prompt),
    // kept with the emotion head so evaluation renders inputs the same way; empty: unknown.
    std::string emotion_system_prompt;
    // Dev examples (tokenized like the training ones; must outlive the call). Empty: no dev metrics.
    // recipe.evaluation.max_examples takes the first N.
    std::span<const TokenizedExample> dev;
    // A safety teacher that has already served exactly this dev span (after max_examples), with the
    // recipe's temperature and top_k: its cached distributions are reused for the dev KL instead of
    // running the teacher again (it caches by dev index). Null: run_sft makes its own.
    SafetyTeacher* dev_teacher = nullptr;
    // Data parallel (train/training_run.h): every rank calls run_sft with the same recipe and
    // examples. Null: one process.
    dist::Communicator* communicator = nullptr;
    // Called with each optimizer step's number (from 1) and mean loss; returning false stops the run
    // after that step's checkpoint (if due), without the final adapter. For tests and signals.
    std::function<bool(std::int64_t step, double loss)> on_step;
    // The styles the training examples carry (ChatDataset::styles), for <run>/adapter/styles.json.
    std::vector<data::StyleTokens> styles;
};

// One step's loss terms, each already normalised by its count (NaN when the term is inactive or
// had nothing to count that step); total = Σ λ·term over the finite ones.
struct StepLosses {
    double total = 0.0;
    double lm = 0.0;
    double emotion = 0.0;
    double strategy = 0.0;
    double valence_arousal = 0.0;
    double safety = 0.0;
};

struct SftResult {
    std::int64_t first_step = 0;  // steps already done when this call started (resume)
    std::int64_t last_step = 0;   // steps done when it returned
    std::vector<double> losses;   // per step of this call, in order: the total (NaN for a skipped step)
    std::vector<StepLosses> components;  // per step of this call, as computed (skipped steps included)
    std::optional<DevMetrics> final_dev;  // after the last step, when a dev set was given and the run finished
    std::size_t teacher_cached_bytes = 0;  // the safety teacher's cache at the end (0 without a teacher)
    std::size_t teacher_forwarded_tokens = 0;  // input tokens its forwards ran on this rank
    std::size_t teacher_reused_tokens = 0;     // input tokens shared prefixes spared it (safety_teacher.h)
    std::int64_t skipped_steps = 0;
    double tokens_per_s = 0.0;    // row tokens (padding included) per second, over this call
    double elapsed_s = 0.0;
    bool finished = false;        // reached max_steps and wrote the adapter
};

// The emotion loss's class weights for `rebalance` from the labels at the examples' head sites
// (n_c occurrences of class c): w_c ∝ 1/n_c or 1/√n_c, scaled so Σ_c n_c·w_c = Σ_c n_c (the mean
// weight over label occurrences is 1, so the loss keeps its scale); 1 for a class never seen.
// Empty for EmotionRebalance::None. Error for a label outside [0, classes).
std::vector<float> emotion_class_weights(std::span<const TokenizedExample> examples, std::int64_t classes,
                                         EmotionRebalance rebalance);

// Trains `recipe` on `examples` (already tokenized and filtered; with the KL active they must carry
// teacher_tokens, train/chat_dataset.h) over `base`, which is not const because the safety teacher
// runs the frozen base's own forward (its shared activation buffers); the weights are never changed.
// Throws Error for a recipe that does not fit the model (max_seq_len over the context, unknown
// targets), a checkpoint that does not match, a non-finite step under nan_policy stop, or I/O failure.
SftResult run_sft(const SftRecipe& recipe, model::Decoder& base, std::span<const TokenizedExample> examples,
                  const SftOptions& options);

}  // namespace kindred::train
