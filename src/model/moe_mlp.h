// model/moe_mlp.h — the mixture-of-experts MLP piece both decoders compose (Qwen3-MoE, gpt-oss):
//
//   logits = x · routerᵀ (+ bias) → top-k and weights (the family's router) → tokens grouped by
//   expert → gate, up = each chosen expert's products (+ expert biases, + LoRA on the stacks)
//   → act = SwiGLU or gpt-oss's clamped SwiGLU → out = down products (+ bias, + LoRA)
//   → y[t] = Σ_k weight · out
//
// LoRA on the experts follows PEFT's target_parameters layout (kernels/moe.h): one adapter on the
// fused gate_up parameter, whose B rows are the gate then up halves (Qwen3-MoE's fused
// [gate; up]) or alternate gate/up (gpt-oss's interleaved gate_up), and one on down_proj.
// The router is frozen; its weights still carry gradient from the experts' outputs back to x.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_config.h"
#include "kernels/activations.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "model/moe_weights.h"

namespace kindred::model {

struct MoeMlpSpec {
    kernels::RouterKind router = kernels::RouterKind::SoftmaxTopK;
    bool normalize = false;      // Qwen3-MoE's norm_topk_prob
    std::int64_t top_k = 0;
    bool clamped = false;        // gpt-oss's clamped SwiGLU, else SiLU · up
    kernels::ClampedSwiglu swiglu;
    bool interleaved_gate_up = false;  // how the gate_up adapter's B rows alternate (gpt-oss)
};

// The family's MoE spec from a config (qwen3_moe or gpt_oss).
MoeMlpSpec moe_mlp_spec(const ModelConfig& config);

// LoRA adapters on the expert parameters of one layer (null pointers: no adapter on that stack).
struct MoeLora {
    const float* a_gate_up = nullptr;  // [experts · rank x hidden]
    const float* b_gate_up = nullptr;  // [2n x rank · experts]
    const float* a_down = nullptr;     // [experts · rank x n]
    const float* b_down = nullptr;     // [hidden x rank · experts]
    std::int64_t rank = 0;
    float scale = 1.0f;
};

struct MoeLoraGrads {
    float* a_gate_up = nullptr;
    float* b_gate_up = nullptr;
    float* a_down = nullptr;
    float* b_down = nullptr;
};

// What a forward leaves for the backward (reused across calls: buffers only grow).
struct MoeActivations {
    std::vector<float> logits, weights, rows_x, gate, up, act, xa_gate_up, xa_down, out;
    std::vector<std::int32_t> chosen;
    kernels::ExpertGroups groups;
};

// y[tokens x hidden] = the MoE MLP of x[tokens x hidden] (y may be x: x is read before y is
// written); `lora` may be null.
void moe_mlp_forward(float* y, const float* x, std::int64_t tokens, const MoeWeights& weights, const MoeMlpSpec& spec,
                     const MoeLora* lora, MoeActivations& saved,
                     kernels::Precision precision = kernels::Precision::F32);

// Given dy, ADDS dx and the adapter's gradients (grads may be null, or any of its pointers).
void moe_mlp_backward(float* dx, const float* dy, std::int64_t tokens, const MoeActivations& saved,
                      const MoeWeights& weights, const MoeMlpSpec& spec, const MoeLora* lora, const MoeLoraGrads* grads,
                      kernels::Precision precision = kernels::Precision::F32);

}  // namespace kindred::model
