// kernels/activations.h — elementwise ops of the decoder: gated MLP activations and residual adds.
#pragma once

#include <cstdint>

namespace kindred::kernels {

enum class GateActivation { Silu, GeluTanh };

// out[i] = act(gate[i]) * up[i] (SwiGLU with Silu, GeGLU with GeluTanh); out may alias gate or up.
void gated_activation_forward(float* out, const float* gate, const float* up, std::int64_t n, GateActivation act);

// y[i] += x[i]
void residual_forward(float* y, const float* x, std::int64_t n);

}  // namespace kindred::kernels
