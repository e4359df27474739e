// cli/products_flag.h — `--products int8|fp32` on the commands that run inference (generate, chat,
// serve, score, eval): the Precision of the decoder's products against the frozen weights
// (model::Decoder::set_products). int8 quantizes the activations to 8 bits as llama.cpp does on the
// CPU; fp32 is the exact mode the goldens are checked in. The defaults follow what was measured
// (docs/models.md): `serve`, which decodes many sequences per forward, takes int8 (4 and 16
// clients 1.07x and 1.14x llama-server, against 0.62x in fp32); the single-stream commands take
// fp32, faster there on the default model (tg128 107 against 71 tokens/s; one Q4_1 mat-vec is
// still 1.2x faster in fp32 since int8 reads the packed blocks directly, bench/int8_dot).
#pragma once

#include <CLI/CLI.hpp>

#include "kernels/matmul.h"

namespace kindred::cli {

// What the single-stream inference commands and `serve` compute in unless --products says otherwise.
constexpr kernels::Precision default_inference_products = kernels::Precision::F32;
constexpr kernels::Precision default_serve_products = kernels::Precision::Int8;

// Adds --products with the command's default; any other value is refused, naming the flag and the two.
void add_products_flag(CLI::App& command, kernels::Precision& products,
                       kernels::Precision default_products = default_inference_products);

}  // namespace kindred::cli
