// model/moe_weights.h — one layer's mixture-of-experts tensors, bound with their shapes checked
// against the config: the router (and its bias), the gate/up/down expert stacks (a GGUF 3-D tensor
// or an HF checkpoint's per-expert tensors, see weights.h) and, where the file has them (gpt-oss),
// the experts' biases. The MoE MLP piece of both decoders reads this; nothing is copied but the
// small bias vectors (to fp32).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_config.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "model/weights.h"

namespace kindred::model {

struct ExpertStack {
    DType type = DType::F32;
    std::int64_t experts = 0, rows = 0, cols = 0;
    std::vector<const void*> slices;  // expert e's [rows x cols] matrix

    kernels::ExpertMatrices matrices() const { return {type, experts, rows, cols, slices.data()}; }
};

struct MoeWeights {
    kernels::Matrix router;          // [experts x hidden]
    std::vector<float> router_bias;  // [experts], empty when the file has none
    ExpertStack gate, up, down;      // [experts, n, hidden], [experts, n, hidden], [experts, hidden, n]
    std::vector<float> gate_bias, up_bias, down_bias;  // [experts x rows] fp32, empty when absent
};

// Binds layer `layer`'s blk.L.ffn_gate_inp.{weight,bias} and blk.L.ffn_{gate,up,down}_exps.{weight,bias}.
// Throws Error naming the source and tensor when one is missing, of a type the kernels cannot
// read, or shaped unlike the config says (expert count, widths), and when gpt-oss's biases are
// missing.
MoeWeights bind_moe_weights(const Weights& weights, const ModelConfig& config, std::int64_t layer);

}  // namespace kindred::model
