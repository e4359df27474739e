// kernels/activations.h — elementwise ops of the decoder: gated MLP activations and residual adds.
#pragma once

#include <cstdint>

namespace kindred::kernels {

enum class GateActivation { Silu, GeluTanh };

// out[i] = act(gate[i]) * up[i] (SwiGLU with Silu, GeGLU with GeluTanh); out may alias gate or up.
void gated_activation_forward(float* out, const float* gate, const float* up, std::int64_t n, GateActivation act);

// Backward of gated_activation_forward (adds, like every backward): dgate[i] += dout[i] · up[i] ·
// act'(gate[i]), dup[i] += dout[i] · act(gate[i]). silu'(g) = s (1 + g (1 − s)) with s = sigmoid(g).
// Either gradient pointer may be null. The residual add needs no backward of its own: both of its
// inputs receive dy unchanged.
void gated_activation_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                               std::int64_t n, GateActivation act);

// gpt-oss's expert activation (transformers' GptOssExperts._apply_gate): the gate is clamped from
// above, the up projection on both sides, and up is offset by one:
//   g = min(gate, limit), u = clamp(up, −limit, limit), out = g · sigmoid(alpha · g) · (u + 1).
// The model passes the gate and up halves as separate arrays; the fused tensors interleave them
// (gate in even columns), which the loader and the experts' LoRA undo, not this op.
struct ClampedSwiglu {
    float alpha = 1.702f;
    float limit = 7.0f;
};
void clamped_swiglu_forward(float* out, const float* gate, const float* up, std::int64_t n, ClampedSwiglu params);
// Adds dgate[i] += dout[i] · (u + 1) · d(g·sigmoid(αg))/dg and dup[i] += dout[i] · g·sigmoid(αg), each
// only where its clamp passes the input through (torch's clamp: gradient 1 on the closed interval,
// 0 outside). Either gradient pointer may be null.
void clamped_swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                             std::int64_t n, ClampedSwiglu params);

// y[i] += x[i]
void residual_forward(float* y, const float* x, std::int64_t n);

// y[i] = from[i] + branch[i] in one pass (no copy of `from` first); y may alias either input.
void residual_sum(float* y, const float* from, const float* branch, std::int64_t n);

}  // namespace kindred::kernels
