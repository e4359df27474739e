// cli/generation_flags.h — the flags `generate` and `chat` share (model, adapter, threads,
// context, sampling) and turning them into library settings, so both commands spell, default and
// check them the same way.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "core/dtype.h"
#include "infer/sampler.h"
#include "kernels/matmul.h"
#include "model/quantize_weights.h"

namespace kindred::cli {

struct GenerationFlags {
    std::string model = "default";
    std::string adapter;
    model::BaseQuantization quantize = model::BaseQuantization::None;
    kernels::Precision products = kernels::Precision::Int8;  // --products (cli/products_flag.h)
    DType kv_cache = DType::F32;  // --kv-cache (cli/kv_cache_flag.h)
    int threads = 0;              // 0 = KINDRED_THREADS or every core
    std::int64_t max_tokens = 0;  // set by the command's default
    std::int64_t context = 0;     // 0 = the command's default
    infer::SamplingParams sampling;
    std::string seed;             // empty = random
};

// Adds --model, --adapter, --quantize, --products, --kv-cache, --threads, --max-tokens, --temperature, --top-k, --top-p, --min-p,
// --repeat-penalty, --repeat-last-n, --presence-penalty, --frequency-penalty, --seed.
void add_generation_flags(CLI::App& command, GenerationFlags& flags);

// Checks what can be checked before loading the model (sampling ranges, seed), applies
// --threads and fills sampling.seed (random when not given).
void apply_generation_flags(GenerationFlags& flags);

}  // namespace kindred::cli
