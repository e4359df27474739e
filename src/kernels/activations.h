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

// y[i] += x[i]
void residual_forward(float* y, const float* x, std::int64_t n);

}  // namespace kindred::kernels
