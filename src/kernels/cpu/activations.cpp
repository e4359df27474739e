// kernels/cpu/activations.cpp — gated activations and residual adds (fp32, as HF computes them).
#include "kernels/activations.h"

#include <cmath>
#include <numbers>

#include "kernels/cpu/simd.h"

namespace kindred::kernels {

void gated_activation_forward(float* out, const float* gate, const float* up, std::int64_t n, GateActivation act) {
    if (act == GateActivation::Silu) {
        cpu::silu_mul(out, gate, up, n);
    } else {
        // gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        const float c = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
        for (std::int64_t i = 0; i < n; ++i) {
            const float x = gate[i];
            out[i] = 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x))) * up[i];
        }
    }
}

void residual_forward(float* y, const float* x, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace kindred::kernels
