// kernels/cpu/norm.cpp — RMSNorm; the mean of squares accumulates in double so that long rows
// (hidden sizes up to ~8k) lose no precision, then everything else is fp32 as in HF.
#include "kernels/norm.h"

#include <cmath>

#include "core/thread_pool.h"

namespace kindred::kernels {

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, std::int64_t rows, std::int64_t dim,
                     float eps, bool weight_offset) {
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        float* yr = out + r * dim;
        double sum = 0.0;
        for (std::int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
        const float mean = static_cast<float>(sum / static_cast<double>(dim));
        const float scale = 1.0f / std::sqrt(mean + eps);
        if (rstd != nullptr) rstd[r] = scale;
        if (weight_offset)
            for (std::int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] * scale) * (1.0f + w[i]);
        else
            for (std::int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] * scale) * w[i];
    }
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w,
                      std::int64_t rows, std::int64_t dim, bool weight_offset) {
    const float offset = weight_offset ? 1.0f : 0.0f;
    // dx: rows are independent. The row's Σ g·x̂ accumulates in double like the forward's Σ x².
    thread_pool().parallel_for(rows, 4, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = begin; r < end; ++r) {
            const float* xr = x + r * dim;
            const float* dyr = dy + r * dim;
            const float scale = rstd[r];
            double dot = 0.0;
            for (std::int64_t i = 0; i < dim; ++i) dot += static_cast<double>(dyr[i] * (offset + w[i])) * xr[i];
            const float mean = static_cast<float>(dot / static_cast<double>(dim)) * scale;  // mean(g · x̂)
            float* dxr = dx + r * dim;
            for (std::int64_t i = 0; i < dim; ++i)
                dxr[i] += scale * (dyr[i] * (offset + w[i]) - xr[i] * scale * mean);
        }
    });
    if (dw == nullptr) return;
    // dw: each thread owns a range of columns and walks every row, so no two threads share a sum.
    thread_pool().parallel_for(dim, 64, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = 0; r < rows; ++r) {
            const float* xr = x + r * dim;
            const float* dyr = dy + r * dim;
            const float scale = rstd[r];
            for (std::int64_t i = begin; i < end; ++i) dw[i] += dyr[i] * (xr[i] * scale);
        }
    });
}

}  // namespace kindred::kernels
