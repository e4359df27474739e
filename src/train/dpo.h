// train/dpo.h — the preference stage (docs/dpo.md): DPO of a LoRA policy against a frozen
// reference, `kindred train dpo --config RECIPE.yaml [--resume]`.
//
// Reference and policy. The reference is the SFT model: the base with the SFT adapter
// (`reference.adapter`, a PEFT directory) loaded read-only. The policy is a LoRA adapter of the same
// shape initialised from it, so at step 0 policy = reference and every pair's loss is log 2 (sigmoid).
// The SFT heads, when the folder has them, are loaded too: carried unchanged into the DPO adapter
// folder, or trained as auxiliary losses when objective.emotion/strategy/valence_arousal > 0 (off
// by default; the head losses of docs/training.md at the chosen reply's pooled position, labels
// from the pairs file, normalised by the step's labelled sites).
//
// Reference log-probs are computed once and cached on disk with the pairs (TRL's
// precompute_ref_log_probs): <pairs file>.reference-logps.json holds log πref(y+|x) and
// log πref(y−|x) of every kept pair, keyed by the model file (size and FNV-1a of its first and
// last 4 MiB, train/data_parallel.h), the reference adapter's files, the effective compute precision and the tokenized pairs
// (tokens and targets); a key that differs recomputes and rewrites it, naming what changed. So a
// step costs one policy forward and backward over rows holding both sequences of its pairs (two
// sequences per pair, like TRL's concatenated batch, their shared prompt run once:
// train/shared_prefix.h), never a reference pass.
//
// One step. Pairs are packed whole into rows (train/batch.h, preference_pairs.h): for each row,
// the forward, one vocabulary pass for the per-token log-probs (kernels::FusedCrossEntropy), the
// sequence sums, every pair's loss and its derivatives (train/dpo_loss.h), the vocabulary pass back
// with per-token weights −dℓ/d log π, then the backward. Every pair's loss is divided by the
// step's pair count (all micro-batches), so accumulation equals one large batch and the loss is
// TRL's mean over pairs. Dropout follows adapter.dropout (default 0: TRL disables dropout).
//
// Run directory, checkpoints, exact resume, progress bar, NaN policy and data parallelism (each
// rank its rows of the step; gradients, loss and metric sums added up; the reference and the dev
// pairs scored once, sharded over the ranks like the step's rows; rank 0 writes the cache): train/training_run.h, the same as SFT. metrics.jsonl per logged step: loss, TRL's rewards/chosen, rewards/rejected,
// rewards/margins, rewards/accuracies, logps/chosen, logps/rejected, Kindred's loss_dpo (the
// preference loss alone), penalty, violating_chosen (share of the step's pairs), the auxiliary
// head losses loss_emotion/loss_strategy/loss_va (null when off), pairs, target_tokens, lr,
// grad_norm, tokens_per_s, elapsed; dev records {"step", "dev": DpoDevMetrics}. Charts: loss.svg,
// rewards.svg, accuracy.svg, logps.svg, lr.svg, dev.svg.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "formats/peft_adapter.h"
#include "model/decoder.h"
#include "model/trainable_decoder.h"
#include "kernels/loss.h"
#include "train/batch.h"
#include "train/dpo_loss.h"
#include "train/head_losses.h"
#include "train/pairs_build.h"
#include "train/preference_pairs.h"
#include "train/recipe.h"
#include "train/shared_prefix.h"
#include "train/training_run.h"

namespace kindred::infer {
class LoadedModel;
}

namespace kindred::train {

struct DpoRecipe {
    // The keys DPO shares with SFT (model, data, optimisation, logging, output, evaluation, heads
    // switches and the auxiliary head weights); run.adapter is the reference's shape with
    // adapter.dropout, known once reference_lora() has read the reference.
    SftRecipe run;
    std::string reference;      // reference.adapter: the SFT adapter directory
    DpoLossSettings loss;       // dpo.loss, dpo.beta, dpo.label_smoothing, dpo.violation_penalty
    std::size_t max_pairs = 0;  // data.max_pairs: first N usable pairs (0 = all)
    PairsBuildSettings pairs;   // pairs.*: what `kindred pairs build` makes (data.path defaults to pairs.out)
};

// Reads every key (defaults, ranges, enums; errors name key and line) and calls finish(). Does not
// require data.path to exist yet (`kindred pairs build` writes it); reference.adapter must exist.
DpoRecipe read_dpo_recipe(Config& config);

// A recipe's pairs file tokenized for `model` (its chat template, BOS, context) with the recipe's
// max_seq_len and max_pairs; the skip counts' lines go to `warnings`. Error when no pair is usable.
PairDataset load_recipe_pairs(const std::string& path, const infer::LoadedModel& model, const DpoRecipe& recipe,
                              std::vector<std::string>& warnings);

// The reference adapter's LoRA shape as the policy takes it (rank, alpha, rsLoRA, targets and the
// first adapted layer from adapter_config.json, checked against `model`; dropout and seed from the
// recipe). Error naming `where` (the reference's adapter_config.json) for layers Kindred cannot adapt.
model::LoraConfig reference_lora(const peft::Adapter& reference, const SftRecipe& run, const ModelConfig& model,
                                 const std::string& where);

// Per pair: log π(y+|x) and log π(y−|x), summed over the completion tokens.
struct SequenceLogProbs {
    double chosen = 0.0, rejected = 0.0;
};

// Every pair's sequence log-probs under `trainer` in evaluation mode (no dropout, no gradients),
// the pairs packed in file order into rows of at most max_seq_len tokens. Data parallel, each rank
// scores the rows DataParallel::runs_row gives it and the ranks then sum their values (zero where
// another rank scored), so every rank returns every pair's values, each computed once in the job,
// in the same row as one process computes it: the same numbers bit for bit. Collective: every rank
// calls it.
std::vector<SequenceLogProbs> score_pairs(model::TrainableDecoder& trainer, const PairDataset& pairs,
                                          std::size_t max_seq_len, const DataParallel& parallel = DataParallel());

struct ReferenceCacheKey {
    std::string model;               // the model files' fingerprint (model_fingerprint), and its quantization at load
    std::string reference_adapter;   // "fnv1a64:<hex>" of its adapter_config.json + adapter_model.safetensors
    std::string precision;           // the effective compute precision
    std::string pairs;               // "fnv1a64:<hex>" of the tokenized pairs, and their count
    nlohmann::json to_json() const;
};

// The key of a reference cache for this model (file or checkpoint directory, quantized at load or
// not), reference folder, precision and pairs.
ReferenceCacheKey reference_cache_key(const std::string& model_path, model::BaseQuantization quantization,
                                      const std::string& reference_dir, kernels::Precision precision,
                                      const PairDataset& pairs);

// <pairs path>.reference-logps.json
std::string reference_cache_path(const std::string& pairs_path);

struct ReferenceLogProbs {
    std::vector<SequenceLogProbs> pairs;  // aligned with the dataset's pairs
    bool from_cache = false;
    std::size_t sequences_scored = 0;     // sequences scored by the job this call (0 from the cache)
    std::string note;                     // why the cache was not used, when it was not
};

// The cached values when `cache_path` holds this key (empty path: no cache), otherwise `compute()`
// then written there atomically by rank 0. A cache file that does not parse is an Error naming it.
// Data parallel, the ranks decide together: the cache is used only when every rank finds it valid
// (a file on rank 0's disk alone is recomputed, with a note), so `compute`, a collective, is called
// by all ranks or by none.
ReferenceLogProbs cached_reference_log_probs(const std::string& cache_path, const ReferenceCacheKey& key,
                                             std::size_t pair_count,
                                             const std::function<std::vector<SequenceLogProbs>()>& compute,
                                             const DataParallel& parallel = DataParallel());

// Dev preference metrics of a policy's log-probs against the reference's: TRL's eval metrics
// (loss, rewards/*, logps/*; means over the pairs) and the reference-free preference accuracy, the
// share of pairs with log π(y+|x) > log π(y−|x).
struct DpoDevMetrics {
    DpoBatchMetrics batch;
    double preference_accuracy = 0.0;
};
DpoDevMetrics dev_pair_metrics(std::span<const SequenceLogProbs> policy, std::span<const SequenceLogProbs> reference,
                               const PairDataset& pairs, const DpoLossSettings& loss);
nlohmann::json to_json(const DpoDevMetrics& metrics);

// One packed row's DPO objective, what run_dpo does per row (exposed for the TRL goldens and
// benchmarks): the training forward, the per-token log-probs of the row's completions in one
// vocabulary pass, each pair's sequence sums against its reference log-probs, the pair losses and
// their derivatives, the vocabulary pass back with per-token weights −dℓ/d log π scaled by
// `pair_scale` (1 / the step's pairs), the auxiliary head losses at `head_scales`, and the
// backward, which ADDS the adapter (and head) gradients. The row's pairs' log-probs and losses are
// appended to `logps` and `losses`.
class DpoRows {
public:
    DpoRows(const PairDataset& pairs, std::span<const SequenceLogProbs> reference, const DpoLossSettings& loss,
            std::int64_t hidden, std::int64_t vocab, model::Heads* heads);
    void run(model::TrainableDecoder& trainer, const MicroBatch& micro, std::size_t row, float pair_scale,
             const HeadScales& head_scales, HeadSums& head_sums, std::vector<PairLogProbs>& logps,
             std::vector<PairLoss>& losses);

private:
    const PairDataset& pairs_;
    std::span<const SequenceLogProbs> reference_;
    const DpoLossSettings& loss_;
    std::int64_t hidden_, vocab_;
    HeadLosses heads_;
    kernels::FusedCrossEntropy ce_;
    std::vector<PairAt> placed_;
    std::vector<float> logprob_, weights_, states_, dhidden_, dcompact_;
};

struct DpoOptions {
    RunOptions run;                    // run_dir, resume, base_model, on_step
    std::string model_path;            // the model file (the reference cache's key)
    std::int32_t pad_id = 0;
    const PairDataset* dev = nullptr;  // dev pairs (evaluation.max_examples takes the first N); null: none
    bool cache_reference = true;       // keep reference log-probs in <pairs>.reference-logps.json
};

struct DpoStep {
    DpoBatchMetrics metrics;  // TRL's batch metrics of the step (loss = the preference loss + penalty)
    double loss = 0.0;        // the total, auxiliary head terms included
    double emotion = 0.0, strategy = 0.0, valence_arousal = 0.0;  // auxiliary terms (NaN when off)
};

struct DpoResult {
    std::int64_t first_step = 0;
    std::int64_t last_step = 0;
    std::vector<DpoStep> steps;  // this call's, in order
    std::optional<DpoDevMetrics> final_dev;    // after the last step
    ReferenceLogProbs reference;               // the training pairs'
    std::size_t dev_reference_sequences_scored = 0;
    std::vector<SequenceLogProbs> dev_reference;  // the dev pairs' reference log-probs
    std::int64_t skipped_steps = 0;
    double tokens_per_s = 0.0;
    double elapsed_s = 0.0;
    bool finished = false;
};

// Trains `recipe` on `pairs` over `base` (see above). Throws Error for a recipe that does not fit
// the model or the reference, a checkpoint that does not match, a non-finite step under
// nan_policy stop, or I/O failure.
DpoResult run_dpo(const DpoRecipe& recipe, model::Decoder& base, const PairDataset& pairs, const DpoOptions& options);

}  // namespace kindred::train
