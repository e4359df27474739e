// train/recipe.h — the SFT recipe schema: what `kindred train sft --config x.yaml` reads, with
// defaults and range checks. The reads in read_sft_recipe ARE the schema (core/config.h): a key
// not read there is rejected by finish() naming its file and line, a wrong type or out-of-range
// value names the key and where it was set. configs/smollm2-lora*.yaml are plain-chat examples,
// configs/smollm2-multitask.yaml the multi-objective one; docs/training.md documents every key.
//
// Multi-objective keys (objective.*, heads.*, safety.*): a term is ACTIVE when its weight is > 0
// and, for a head, its switch is on (for the KL, safety.enabled). A switched-off head's weight is
// stored as 0, so `objective` always holds the weights the loop uses. Every weight but objective.lm
// defaults to 0: a recipe without these sections trains exactly as plain SFT did.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "data/labels.h"
#include "data/style.h"
#include "kernels/matmul.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "model/quantize_weights.h"
#include "train/schedule.h"

namespace kindred::train {

enum class NanPolicy { Stop, Skip };

// λ of each term of L_SFT = λ_LM·L_NLL + λ_emo·L_emo + λ_strat·L_strat + λ_val·L_val + λ_safe·L_safe.
struct ObjectiveWeights {
    double lm = 1.0;
    double emotion = 0.0;
    double strategy = 0.0;
    double valence_arousal = 0.0;
    double safety_kl = 0.0;
};

// Class weights of the emotion loss from the training labels' frequencies n_c (train/sft.h):
// none, w_c ∝ 1/n_c, or w_c ∝ 1/√n_c, scaled so the mean weight over label occurrences is 1.
enum class EmotionRebalance { None, InverseFrequency, SqrtInverseFrequency };

// The ablation switches as written (the weights above already account for them).
struct HeadSwitches {
    bool emotion = true;
    bool strategy = true;
    bool valence_arousal = true;
    // The heads' learning rate as a multiple of the schedule's (heads.lr_multiplier): the heads
    // start from random weights, the adapters from an identity update (B = 0).
    double lr_multiplier = 1.0;
    // The emotion head (docs/training.md, "The emotion head on GoEmotions"): its label set
    // (heads.emotion_labels), its activation and loss (heads.emotion_loss: softmax = soft-label
    // cross-entropy, sigmoid = per-label binary cross-entropy) and class rebalancing
    // (heads.emotion_rebalance).
    data::EmotionSpace emotion_space = data::EmotionSpace::Kindred;
    model::EmotionActivation emotion_activation = model::EmotionActivation::Softmax;
    EmotionRebalance emotion_rebalance = EmotionRebalance::None;
};

struct SafetyRecipe {
    bool enabled = true;
    double temperature = 2.0;   // τ of both softmaxes in the KL
    std::int64_t top_k = 32;    // teacher ids kept per target token (the rest is one residual bucket)
    std::string rules = "default";  // `default` = train::default_safety_rules(), else the literal text
};

struct EvaluationRecipe {
    std::int64_t every = 0;         // steps between dev evaluations; 0 = only after the last step
    std::int64_t max_examples = 0;  // first N dev examples; 0 = all
};

struct SftRecipe {
    std::string name;              // run folder name; empty: a UTC timestamp
    std::string model = "default";  // GGUF path, HF checkpoint directory or `default`
    // model.quantize: a bf16/fp16/fp32 base's linear weights quantized at load (q4_k, nf4), or none.
    model::BaseQuantization quantize = model::BaseQuantization::None;
    // Products against the frozen base (model.compute_dtype): bf16 as QLoRA computes (on AMX; a
    // CPU without AMX-BF16 runs fp32, and the run says so), or fp32.
    kernels::Precision compute = kernels::Precision::BF16;
    model::LoraConfig adapter;     // seed = data.seed
    std::string data_path;
    std::string dev_path;            // empty: no dev set
    // data.style (+ data.style_placement): style tokens put into every example at load time, as
    // `kindred data prepare --style-tokens` would have (data/style.h); none when not given.
    std::optional<data::StyleTokens> style;
    std::int64_t max_seq_len = 512;  // also the packed row length
    std::uint64_t seed = 0;

    double lr = 2e-4;
    double weight_decay = 0.0;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    std::int64_t warmup_steps = 0;
    LrDecay schedule = LrDecay::Cosine;
    double min_lr_ratio = 0.0;
    std::int64_t max_steps = 0;
    std::int64_t micro_batch = 1;        // packed rows per micro-batch
    std::int64_t grad_accumulation = 1;  // micro-batches per optimizer step
    double max_grad_norm = 1.0;          // 0 disables clipping
    bool checkpoint_activations = false;
    // With adapter.first_layer > 0: compute the frozen layers once per example into
    // <output.dir>/frozen-cache/ and train from there (train/frozen_cache.h).
    bool cache_frozen_layers = true;
    NanPolicy nan_policy = NanPolicy::Stop;

    std::int64_t log_every = 1;  // steps between metrics.jsonl records
    bool progress = true;

    std::string output_dir = "runs";
    std::int64_t checkpoint_every = 50;
    std::int64_t keep_last = 3;

    ObjectiveWeights objective;
    HeadSwitches heads;
    SafetyRecipe safety;
    EvaluationRecipe evaluation;

    std::string resolved_yaml;  // config.dump() after every read: the run's config.yaml
};

// Reads every recipe key (applying defaults), validates ranges and enums, checks data.path exists,
// then calls finish() so unknown keys are errors. Errors name the key and its file and line.
SftRecipe read_sft_recipe(Config& config);

// Typed reads with range checks; an Error names the key and where it was set.
std::int64_t read_at_least(Config& config, std::string_view key, std::int64_t fallback, std::int64_t minimum = 1);
double read_in_range(Config& config, std::string_view key, double fallback, double lo, double hi);
double read_weight(Config& config, std::string_view key, double fallback);  // [0, 1000]

// The pieces of read_sft_recipe that other training recipes share (the DPO recipe, train/dpo.h),
// each reading its keys with the SFT defaults, ranges and messages:
//   name, model.path, model.compute_dtype
void read_model_keys(Config& config, SftRecipe& recipe);
//   adapter.dropout (returned)
double read_adapter_dropout(Config& config);
//   data.path (required unless `files.path_fallback` is given), data.dev_path (optional, default
//   `files.dev_path_fallback`), both checked to exist when `files.must_exist` (DPO's are written by
//   `kindred pairs build` after the recipe is read, and their readers name a missing file),
//   data.max_seq_len, data.seed (also the adapter's seed)
struct DataFiles {
    bool must_exist = true;
    std::string path_fallback, dev_path_fallback;
};
void read_data_keys(Config& config, SftRecipe& recipe, const DataFiles& files);
//   optimisation.* (optimisation.lr defaulting to `default_lr`), logging.*, output.*
void read_optimisation_keys(Config& config, SftRecipe& recipe, double default_lr);
//   objective.emotion, objective.strategy, objective.valence_arousal
void read_head_keys(Config& config, SftRecipe& recipe);
//   heads.* (a switched-off head's weight set to 0)
void read_head_switches(Config& config, SftRecipe& recipe);
//   evaluation.every, evaluation.max_examples
void read_evaluation_keys(Config& config, SftRecipe& recipe);

// Whether the loop computes each term (weight > 0; the switches are folded into the weights).
bool emotion_active(const SftRecipe& recipe);
bool strategy_active(const SftRecipe& recipe);
bool valence_arousal_active(const SftRecipe& recipe);
bool safety_active(const SftRecipe& recipe);  // safety.enabled and objective.safety_kl > 0
bool any_head_active(const SftRecipe& recipe);

// The safety rules text the teacher prepends (resolves `default`); empty when the KL is inactive.
std::string safety_rules_text(const SftRecipe& recipe);

// The learning-rate schedule the recipe describes.
LrSchedule lr_schedule(const SftRecipe& recipe);

}  // namespace kindred::train
