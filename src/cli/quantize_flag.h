// cli/quantize_flag.h — `--quantize none|q4_k|nf4` on the commands that load a model by --model
// (chat, generate, score, serve): the CLI spelling of a recipe's model.quantize
// (model/quantize_weights.h).
#pragma once

#include <CLI/CLI.hpp>

#include "model/quantize_weights.h"

namespace kindred::cli {

// Adds --quantize; any other value is refused, naming the flag and the three.
void add_quantize_flag(CLI::App& command, model::BaseQuantization& quantization);

}  // namespace kindred::cli
