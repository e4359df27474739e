// kernels/cpu/activations.cpp — gated activations and residual adds (fp32, as HF computes them).
#include "kernels/activations.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/thread_pool.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {
namespace {

// sqrt(2 / pi) of gelu_pytorch_tanh.
const float gelu_c = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));

// Elements per thread-pool work item: enough to amortize a region start (~microseconds).
constexpr std::int64_t elementwise_grain = 16384;

void silu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, std::int64_t n) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    i = cpu::vector_steps(n, [&](auto lanes, std::int64_t at) {
        using L = decltype(lanes);
        using Reg = typename L::Reg;
        const Reg one = L::set1(1.0f), g = L::load(gate + at), d = L::load(dout + at);
        const Reg s = one / (one + cpu::exp_lanes<L>(L::set1(0.0f) - g));
        if (dup != nullptr) L::store(dup + at, L::fma(d, g * s, L::load(dup + at)));
        // s (1 + g (1 - s))
        if (dgate != nullptr)
            L::store(dgate + at, L::fma(d * L::load(up + at), s * L::fma(g, one - s, one), L::load(dgate + at)));
    });
#endif
    for (; i < n; ++i) {
        const float g = gate[i], s = 1.0f / (1.0f + std::exp(-g));
        if (dup != nullptr) dup[i] += dout[i] * (g * s);
        if (dgate != nullptr) dgate[i] += dout[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
    }
}

void gelu_tanh_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                        std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
        const float x = gate[i];
        const float t = std::tanh(gelu_c * (x + 0.044715f * x * x * x));
        if (dup != nullptr) dup[i] += dout[i] * (0.5f * x * (1.0f + t));
        if (dgate != nullptr) {
            const float derivative =
                0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * gelu_c * (1.0f + 3.0f * 0.044715f * x * x);
            dgate[i] += dout[i] * up[i] * derivative;
        }
    }
}

}  // namespace

void gated_activation_forward(float* out, const float* gate, const float* up, std::int64_t n, GateActivation act) {
    thread_pool().parallel_for(n, elementwise_grain, [&](std::int64_t begin, std::int64_t end) {
        if (act == GateActivation::Silu) {
            cpu::silu_mul(out + begin, gate + begin, up + begin, end - begin);
        } else {
            // gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            const float c = gelu_c;
            for (std::int64_t i = begin; i < end; ++i) {
                const float x = gate[i];
                out[i] = 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x))) * up[i];
            }
        }
    });
}

void gated_activation_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                               std::int64_t n, GateActivation act) {
    thread_pool().parallel_for(n, elementwise_grain, [&](std::int64_t begin, std::int64_t end) {
        float* dg = dgate != nullptr ? dgate + begin : nullptr;
        float* du = dup != nullptr ? dup + begin : nullptr;
        if (act == GateActivation::Silu)
            silu_backward(dg, du, dout + begin, gate + begin, up + begin, end - begin);
        else
            gelu_tanh_backward(dg, du, dout + begin, gate + begin, up + begin, end - begin);
    });
}

void clamped_swiglu_forward(float* out, const float* gate, const float* up, std::int64_t n, ClampedSwiglu params) {
    thread_pool().parallel_for(n, elementwise_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
            const float g = std::min(gate[i], params.limit);
            const float u = std::clamp(up[i], -params.limit, params.limit);
            out[i] = g / (1.0f + std::exp(-params.alpha * g)) * (u + 1.0f);
        }
    });
}

void clamped_swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                             std::int64_t n, ClampedSwiglu params) {
    thread_pool().parallel_for(n, elementwise_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
            const float g = std::min(gate[i], params.limit);
            const float u = std::clamp(up[i], -params.limit, params.limit);
            const float s = 1.0f / (1.0f + std::exp(-params.alpha * g));
            if (dup != nullptr && up[i] >= -params.limit && up[i] <= params.limit) dup[i] += dout[i] * g * s;
            // d(g·σ(αg))/dg = σ + αg·σ(1 − σ)
            if (dgate != nullptr && gate[i] <= params.limit)
                dgate[i] += dout[i] * (u + 1.0f) * (s + params.alpha * g * s * (1.0f - s));
        }
    });
}

void residual_forward(float* y, const float* x, std::int64_t n) { residual_sum(y, y, x, n); }

void residual_sum(float* y, const float* from, const float* branch, std::int64_t n) {
    thread_pool().parallel_for(n, elementwise_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) y[i] = from[i] + branch[i];
    });
}

}  // namespace kindred::kernels
