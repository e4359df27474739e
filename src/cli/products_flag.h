// cli/products_flag.h — `--products int8|fp32` on the commands that run inference (generate, chat,
// serve, score, eval): the Precision of the decoder's products against the frozen weights
// (model::Decoder::set_products). int8, the default, quantizes the activations to 8 bits as
// llama.cpp does on the CPU; fp32 is the exact mode the goldens are checked in.
#pragma once

#include <CLI/CLI.hpp>

#include "kernels/matmul.h"

namespace kindred::cli {

// What inference commands compute in unless --products says otherwise.
constexpr kernels::Precision default_inference_products = kernels::Precision::Int8;

// Adds --products; any other value is refused, naming the flag and the two.
void add_products_flag(CLI::App& command, kernels::Precision& products);

}  // namespace kindred::cli
