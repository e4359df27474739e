// train/recipe.h — the SFT recipe schema: what `kindred train sft --config x.yaml` reads, with
// defaults and range checks. The reads in read_sft_recipe ARE the schema (core/config.h): a key
// not read there is rejected by finish() naming its file and line, a wrong type or out-of-range
// value names the key and where it was set. configs/smollm2-lora*.yaml are the examples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "model/lora_adapters.h"
#include "train/schedule.h"

namespace kindred::train {

enum class NanPolicy { Stop, Skip };

struct SftRecipe {
    std::string name;              // run folder name; empty: a UTC timestamp
    std::string model = "default";  // GGUF path or `default`
    model::LoraConfig adapter;     // seed = data.seed
    std::string data_path;
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
    NanPolicy nan_policy = NanPolicy::Stop;

    std::int64_t log_every = 1;  // steps between metrics.jsonl records
    bool progress = true;

    std::string output_dir = "runs";
    std::int64_t checkpoint_every = 50;
    std::int64_t keep_last = 3;

    std::string resolved_yaml;  // config.dump() after every read: the run's config.yaml
};

// Reads every recipe key (applying defaults), validates ranges and enums, checks data.path exists,
// then calls finish() so unknown keys are errors. Errors name the key and its file and line.
SftRecipe read_sft_recipe(Config& config);

// The learning-rate schedule the recipe describes.
LrSchedule lr_schedule(const SftRecipe& recipe);

}  // namespace kindred::train
