// cli/products_flag.h — `--products int8|fp32` on the commands that run inference (generate, chat,
// serve, score, eval): the Precision of the decoder's products against the frozen weights
// (model::Decoder::set_products). int8 quantizes the activations to 8 bits as llama.cpp does on the
// CPU; fp32 is the exact mode the goldens are checked in. The defaults follow what was measured
// (docs/models.md): `serve`, which decodes many sequences per forward, takes int8 (4 and 16
// clients 1.07x and 1.14x llama-server, against 0.62x in fp32); the single-stream commands take
// int8 where the CPU has AMX-INT8 (there int8 is faster at one token and at long prompts: on the
// 2-core Xeon tg64 94.6 against 52.6 tokens/s, pp512 650 against 423, in one run), fp32 elsewhere
// (on the AVX2 Zen 2, one stream decoded faster in fp32 when last measured: tg128 107 against 71).
#pragma once

#include <CLI/CLI.hpp>

#include "kernels/matmul.h"

namespace kindred::cli {

// What the single-stream inference commands and `serve` compute in unless --products says otherwise.
kernels::Precision default_inference_products();
constexpr kernels::Precision default_serve_products = kernels::Precision::Int8;

// Adds --products with the command's default; any other value is refused, naming the flag and the two.
void add_products_flag(CLI::App& command, kernels::Precision& products,
                       kernels::Precision default_products = default_inference_products());

}  // namespace kindred::cli
