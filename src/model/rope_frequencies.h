// model/rope_frequencies.h — the rotary inverse frequencies a config asks for: theta^(-2i/d),
// then the config's scaling (linear, llama3, YaRN), computed in fp32 the way HF's rope init
// functions do so that positions rotate by the same angles as in transformers.
#pragma once

#include <string>
#include <vector>

#include "formats/model_config.h"

namespace kindred::model {

// head_dim / 2 frequencies.
std::vector<float> rope_frequencies(const ModelConfig& config, const std::string& source);

// The factor cos and sin are multiplied by (transformers' attention_scaling): YaRN's
// attention_factor when the config gives one, else 0.1 · ln(factor) + 1 (1 for factor ≤ 1);
// 1 for every other scaling.
float rope_attention_factor(const ModelConfig& config);

}  // namespace kindred::model
