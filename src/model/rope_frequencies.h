// model/rope_frequencies.h — the rotary inverse frequencies a config asks for: theta^(-2i/d),
// then the config's scaling (linear, llama3), computed in fp32 the way HF's rope init functions
// do so that positions rotate by the same angles as in transformers.
#pragma once

#include <string>
#include <vector>

#include "formats/model_config.h"

namespace kindred::model {

// head_dim / 2 frequencies. Throws Error (naming `source`) for scalings not implemented yet (YaRN).
std::vector<float> rope_frequencies(const ModelConfig& config, const std::string& source);

}  // namespace kindred::model
