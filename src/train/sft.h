// train/sft.h — the supervised fine-tuning loop as a library call: packed rows of tokenized
// conversations through model::TrainableDecoder, gradient accumulation normalised by the step's
// target tokens (train/batch.h), clipping and AdamW (kernels/optimizer.h), the LR schedule, and a
// run directory holding everything needed to inspect or continue the run:
//   <run>/config.yaml      the resolved recipe
//   <run>/metrics.jsonl    per logged step: step, loss, lr, grad_norm, tokens_per_s (row tokens, padding
//                          included), elapsed (s, this invocation), target_tokens
//   <run>/checkpoints/     train/checkpoint.h step folders (adapter, AdamW moments, data position)
//   <run>/adapter/         the final adapter as a PEFT directory
//   <run>/loss.svg, lr.svg charts of the whole run (resumed parts included)
//
// Resume is exact: the checkpoint restores adapter, moments, AdamW step and data position, and the
// dropout stream continues where it was (TrainableDecoder draws masks from the adapters' seed plus
// its call count, so a resumed run seeds its adapters with the calls already made), so a resumed
// run's losses equal the uninterrupted run's bit for bit at a fixed thread count. metrics.jsonl
// records past the checkpoint (written before a crash) are dropped on resume, so each step appears once.
//
// Non-finite loss or gradient norm: with nan_policy stop the run ends with an Error naming the step
// before anything of that step is written; with skip the update is left out (logged with
// "skipped": true) and training goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "train/chat_dataset.h"
#include "train/recipe.h"

namespace kindred::train {

struct SftOptions {
    std::string run_dir;        // created when missing
    bool resume = false;        // continue from <run_dir>/checkpoints (a fresh start when it has none)
    std::string base_model;     // recorded in the PEFT adapter_config.json
    std::int32_t pad_id = 0;
    // Called with each optimizer step's number (from 1) and mean loss; returning false stops the run
    // after that step's checkpoint (if due), without the final adapter. For tests and signals.
    std::function<bool(std::int64_t step, double loss)> on_step;
};

struct SftResult {
    std::int64_t first_step = 0;  // steps already done when this call started (resume)
    std::int64_t last_step = 0;   // steps done when it returned
    std::vector<double> losses;   // per step of this call, in order (NaN for a skipped step)
    std::int64_t skipped_steps = 0;
    double tokens_per_s = 0.0;    // row tokens (padding included) per second, over this call
    double elapsed_s = 0.0;
    bool finished = false;        // reached max_steps and wrote the adapter
};

// Trains `recipe` on `examples` (already tokenized and filtered) over `base`.
// Throws Error for a recipe that does not fit the model (max_seq_len over the context, unknown
// targets), a checkpoint that does not match, a non-finite step under nan_policy stop, or I/O failure.
SftResult run_sft(const SftRecipe& recipe, const model::Decoder& base, std::span<const TokenizedExample> examples,
                  const SftOptions& options);

}  // namespace kindred::train
