// cli/kv_cache_flag.h — `--kv-cache f32|f16|q8_0` on the commands that decode (generate, chat,
// serve, score, eval eqbench2|eqbench3|controller): the element type of the KV caches (model/kv_cache.h,
// Decoder::set_kv_cache_type). f32 is exact and the default; f16 halves the cache's memory, q8_0
// (ggml's blocks of 32 with an fp16 scale) keeps 17/64 of it, each at a small cost in perplexity
// (docs/models.md says how much).
#pragma once

#include <CLI/CLI.hpp>

#include "core/dtype.h"
#include "model/decoder.h"

namespace kindred::cli {

// Adds --kv-cache (default f32); any other value is refused, naming the flag and the three.
void add_kv_cache_flag(CLI::App& command, DType& kv_cache);

// Under --verbose (cli/verbose.h), says on stderr which type the KV caches of `decoder` take.
void report_kv_cache(const model::Decoder& decoder);

}  // namespace kindred::cli
