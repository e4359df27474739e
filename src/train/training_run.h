// train/training_run.h — what Kindred's training loops share (SFT, train/sft.h; DPO, train/dpo.h):
// the run directory, starting or resuming from its checkpoints, the trained parameters (the LoRA
// adapter and, when a loop trains them, the heads) with their AdamW moments, the end of every
// optimizer step (clipping, the NaN policy, AdamW, the metrics.jsonl record, the progress bar, dev
// evaluation and checkpoints when due) and the end of the run (the PEFT adapter folder, charts).
// A loop brings its batches, its loss and its dev metrics; everything a user relies on to inspect,
// stop and continue a run behaves the same in both.
//
// Run directory:
//   <run>/config.yaml      the resolved recipe
//   <run>/metrics.jsonl    one record per logged step (the loop's fields plus step, loss, lr,
//                          grad_norm, tokens_per_s, elapsed; "skipped": true for a skipped update;
//                          allreduce_s, the step's all-reduce, when data parallel)
//                          and {"step", "dev": {...}} per dev evaluation
//   <run>/checkpoints/     train/checkpoint.h step folders: adapter then heads tensors, their
//                          AdamW moments, the data position, the dropout stream's call count
//   <run>/adapter/         the final adapter as a PEFT directory (+ heads.safetensors/heads.json,
//                          + styles.json when the examples carried style tokens)
//   <run>/*.svg            the loop's charts over the whole run (resumed parts included)
//
// Resume is exact: parameters, moments, AdamW step, data position and the dropout stream
// (TrainableDecoder draws masks from the adapters' seed plus its call count: a resumed run seeds its
// adapters with the calls already made, one per packed row) continue where the checkpoint left
// them, so the resumed run equals the uninterrupted one bit for bit at a fixed thread count.
// metrics.jsonl records past the checkpoint (written before a crash) are dropped on resume.
//
// Data parallel (train/data_parallel.h, docs/distributed.md): every rank opens the same run with
// the same recipe and data; the ranks check at start-up that they agree on the recipe and the
// checkpoint resumed from, a loop runs the rows DataParallel gives its rank and calls all_reduce()
// before end_step(), and rank 0 alone writes the run directory (which every rank reads on resume,
// so it must be on a filesystem they share) and shows progress.
//
// Non-finite loss or gradient norm: with nan_policy stop the run ends with an Error naming the step
// before anything of that step is written; with skip the update is left out (logged with
// "skipped": true) and training goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/metrics_log.h"
#include "core/progress.h"
#include "data/style.h"
#include "dist/communicator.h"
#include "formats/peft_adapter.h"
#include "model/decoder.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/recipe.h"

namespace kindred::train {

struct RunOptions {
    std::string run_dir;       // created when missing
    bool resume = false;       // continue from <run_dir>/checkpoints (a fresh start when it has none)
    std::string base_model;    // recorded in the PEFT adapter_config.json
    std::string progress_label = "train";
    // Null: one process.
    dist::Communicator* communicator = nullptr;
    // The styles the training examples carry (ChatDataset::styles): written to <run>/adapter/styles.json
    // with the final adapter when not empty, so inference accepts exactly these.
    std::vector<data::StyleTokens> styles;
    // Called with each optimizer step's number (from 1) and loss; returning false stops the run
    // after that step's checkpoint (if due), without the final adapter. For tests and signals.
    std::function<bool(std::int64_t step, double loss)> on_step;
};

// One chart of a run: metrics.jsonl keys drawn against the step, one line each; a key without
// data is left out. A dev chart reads the {"step", "dev": {...}} records and is written only when
// the run has some; the others are always written.
struct RunChart {
    std::string file;  // "loss.svg"
    std::string title;
    std::string y_label;
    std::vector<std::pair<std::string, std::string>> series;  // metrics key, legend
    double smoothing = 0.0;  // > 0: raw lines faint under their moving average (eval/plot.h)
    bool log_y = false;
    bool dev = false;
};

// The heads a run writes next to its adapter: trained (in the checkpoints, updated by AdamW) or
// carried unchanged from where the run started (DPO without auxiliary head losses).
struct RunHeads {
    std::optional<model::Heads> heads;
    bool trained = false;
    std::vector<std::string> emotion_labels;   // as write_heads wants them
    std::vector<std::string> strategy_labels;
};

class TrainingRun {
public:
    // Opens the run directory: validates the recipe against the model (max_seq_len over the
    // context, max_steps < 1, the schedule), loads the latest checkpoint when resuming (Error when
    // starting afresh over existing checkpoints), builds the adapters (dropout stream advanced to
    // the resumed step), calls `initialise` on a fresh run to set their starting values (null:
    // PEFT's init, B = 0), restores parameters, moments and data position from the checkpoint, and
    // writes config.yaml. The heads must be built for `base`.
    TrainingRun(const SftRecipe& recipe, const model::Decoder& base, const RunOptions& options, RunHeads heads,
                const std::function<void(model::LoraAdapters&)>& initialise = {});

    bool resuming() const { return !loaded_.directory.empty(); }
    std::int64_t start_step() const { return start_step_; }
    DataPosition data_position() const { return position_; }
    const std::string& run_dir() const { return options_.run_dir; }
    const std::string& metrics_path() const { return metrics_path_; }
    model::LoraAdapters& adapters() { return *adapters_; }
    model::Heads* heads() { return heads_.heads ? &*heads_.heads : nullptr; }
    model::Heads* trained_heads() { return heads_.trained ? heads() : nullptr; }
    const DataParallel& parallel() const { return parallel_; }
    // Packed rows per optimizer step (over its micro-batches); a row's training forward number in
    // a one-process run is step * rows_per_step() + its index in the step.
    std::uint64_t rows_per_step() const { return rows_per_step_; }
    // The learning rate of step `step` (0-based).
    double learning_rate(std::int64_t step) const;

    // Starts the progress bar (when the recipe asks for one) with the resume and precision notes.
    void start_progress();
    // A line above the progress bar, or on stderr without one.
    void message(const std::string& text);

    // Zeroes the gradients of the adapter and the trained heads.
    void zero_grads();
    // Data parallel: sums the adapter's and the trained heads' gradients and the loop's `loss_sums`
    // over the ranks, so every rank holds the whole step's; the seconds it took go into the next
    // end_step's record as allreduce_s. One process: nothing.
    void all_reduce(std::span<double> loss_sums);

    // Ends optimizer step `step` (0-based) whose gradients are accumulated: clips, applies the NaN
    // policy, AdamW (heads at heads.lr_multiplier); writes `record` plus step, loss, lr, grad_norm,
    // tokens_per_s, elapsed when logging is due; shows `fields` (then lr) on the progress bar with
    // `tokens` more processed; on the last step or every evaluation.every steps calls `evaluate`
    // (when given) and logs its dev record; saves the checkpoint with `position` when due.
    // Returns false when the run should stop now (on_step said so).
    struct StepEnd {
        double grad_norm = 0.0;
        double lr = 0.0;
        bool finite = true;
        bool stop = false;
    };
    StepEnd end_step(std::int64_t step, double loss, nlohmann::json record, std::vector<ProgressField> fields,
                     std::size_t tokens, double step_start_s, DataPosition position,
                     const std::function<nlohmann::json(std::int64_t step)>& evaluate);

    // After the loop: finishes the progress bar; when `last_step` reached max_steps writes
    // <run>/adapter (PEFT + heads + styles.json); draws `charts` from metrics.jsonl; then waits for
    // every rank. Returns whether the run reached max_steps (the adapter is written).
    bool finish(std::int64_t last_step, const std::vector<RunChart>& charts);

    // Seconds since the run was opened (until finish()), and row tokens per second over them.
    double elapsed_s() const;
    double tokens_per_s() const;
    std::int64_t skipped_steps() const { return skipped_; }

    // Seconds on a monotonic clock (the step timings' clock).
    static double now_s();

private:
    std::vector<NamedTensor> named(std::span<const float> adapter_values, std::span<const float> head_values) const;
    void unpack(const std::vector<NamedTensor>& tensors, std::span<float> adapter_values,
                std::span<float> head_values) const;
    void save(std::int64_t step, DataPosition position);

    const SftRecipe& recipe_;
    RunOptions options_;
    DataParallel parallel_;
    LrSchedule schedule_;
    std::string checkpoint_root_;
    std::string metrics_path_;
    LoadedCheckpoint loaded_;
    std::int64_t start_step_ = 0;
    std::uint64_t rows_per_step_ = 1;
    std::unique_ptr<model::LoraAdapters> adapters_;
    RunHeads heads_;
    std::vector<float> adam_m_, adam_v_;
    std::int64_t adam_step_ = 0;
    DataPosition position_;
    std::optional<MetricsLog> metrics_;
    std::optional<Progress> progress_;
    double started_s_ = 0.0;
    double ended_s_ = -1.0;  // when finish() was called
    double tokens_done_ = 0.0;
    std::int64_t skipped_ = 0;
    double allreduce_s_ = -1.0;  // the pending step's all-reduce, < 0 when none ran
};

// The run folder of a recipe: <output.dir>/<name>; without a name a fresh run gets a UTC
// timestamp and a resumed one the newest run folder holding checkpoints (timestamps sort by time).
std::string run_directory(const SftRecipe& recipe, bool resume);

// Keeps the records of steps up to `step` in a metrics.jsonl (a resumed run redoes later ones).
void truncate_metrics(const std::string& path, std::int64_t step);

// The adapter in PEFT form (HF row order), `base_model` recorded in its config.
peft::Adapter peft_adapter(const model::LoraAdapters& adapters, const std::string& base_model);

// Draws each chart from the records of metrics.jsonl; a chart with no data is not written.
void write_run_charts(const std::string& run_dir, const std::string& metrics_path, const std::vector<RunChart>& charts);

}  // namespace kindred::train
