// kernels/cpu/optimizer.cpp — AdamW and gradient-norm clipping on the CPU (see kernels/optimizer.h).
// The AdamW loop reproduces torch's CPU kernels bit for bit where it can: lerp_ and addcmul_ are
// fused multiply-adds there (checked against torch 2.x on random inputs), addcdiv_ is
// p + (value · m) / d. AdamW is elementwise, so splitting it over the pool cannot change results. The norm is a sum of a
// few million squares at most (adapter gradients): one thread, double accumulator, fixed order.
#include "kernels/optimizer.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace kindred::kernels {
namespace {

// Elements per pool slice: far more than the cost of waking a worker.
constexpr std::int64_t adamw_grain = 16 * 1024;

}  // namespace

void adamw_step(float* params, const float* grads, float* m, float* v, std::int64_t n, const AdamWConfig& config,
                std::int64_t step) {
    if (step < 1) fail("adamw_step: step {} must count from 1", step);
    if (n < 0) fail("adamw_step: negative size {}", n);
    const double lr = config.lr, beta1 = config.beta1, beta2 = config.beta2;
    const auto decay = static_cast<float>(1.0 - lr * config.weight_decay);
    const auto one_minus_beta1 = static_cast<float>(1.0 - beta1);
    const auto one_minus_beta2 = static_cast<float>(1.0 - beta2);
    const auto beta2_f = static_cast<float>(beta2);
    const double correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    const auto negative_step_size = static_cast<float>(-(lr / correction1));
    const auto correction2_sqrt = static_cast<float>(std::sqrt(correction2));
    const auto eps = static_cast<float>(config.eps);
    thread_pool().parallel_for(n, adamw_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
            const float g = grads[i];
            params[i] *= decay;
            m[i] = std::fma(one_minus_beta1, g - m[i], m[i]);
            v[i] = std::fma(one_minus_beta2 * g, g, beta2_f * v[i]);
            const float denominator = std::sqrt(v[i]) / correction2_sqrt + eps;
            params[i] += (negative_step_size * m[i]) / denominator;
        }
    });
}

double global_grad_norm(std::span<const std::span<const float>> grads) {
    double sum = 0.0;
    for (const auto& buffer : grads)
        for (const float g : buffer) sum += static_cast<double>(g) * g;
    return std::sqrt(sum);
}

double clip_grad_norm(std::span<const std::span<float>> grads, double max_norm) {
    std::vector<std::span<const float>> views(grads.begin(), grads.end());
    const double norm = global_grad_norm(views);
    const double coefficient = max_norm / (norm + 1e-6);
    if (std::isfinite(norm) && coefficient < 1.0) {
        const auto factor = static_cast<float>(coefficient);
        for (const auto& buffer : grads)
            for (float& g : buffer) g *= factor;
    }
    return norm;
}

}  // namespace kindred::kernels
