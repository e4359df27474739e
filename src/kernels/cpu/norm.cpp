// kernels/cpu/norm.cpp — RMSNorm; the mean of squares accumulates in double so that long rows
// (hidden sizes up to ~8k) lose no precision, then everything else is fp32 as in HF. The double
// sums run in eight interleaved partial sums: one serial chain of dependent double adds made these
// passes latency-bound (several % of a training step); with AVX-512 the eight sums are one
// register's lanes, added in the same order. The element-wise passes run on cpu::vector_steps,
// the same operations per element as the plain loops that finish a row. Rows are split over the
// thread pool; each row is summed by one thread in a fixed order, so results do not depend on the
// thread count (nor on the vector width).
#include "kernels/norm.h"

#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {
namespace {

// Rows per thread-pool work item.
constexpr std::int64_t row_grain = 4;

// Σ (a[i] · (offset + w[i])) · b[i] with the fp32 product a · (offset + w) (w null: a alone)
// widened to double, in eight partial sums (lane i mod 8) added pairwise at the end.
double double_dot(const float* a, const float* w, float offset, const float* b, std::int64_t n) {
    double lanes[8] = {};
    std::int64_t i = 0;
#ifdef KINDRED_AVX512
    __m512d sums = _mm512_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(a + i);
        if (w != nullptr) g = g * (_mm256_set1_ps(offset) + _mm256_loadu_ps(w + i));
        // The product of two widened floats is exact, so the fused add rounds as the plain one.
        // (maskz: see cpu::Lanes16.)
        const __m512d wide_b = _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i));
        sums = _mm512_fmadd_pd(_mm512_maskz_cvtps_pd(0xFF, g), wide_b, sums);
    }
    _mm512_storeu_pd(lanes, sums);
#else
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) {
            const float g = w != nullptr ? a[i + j] * (offset + w[i + j]) : a[i + j];
            lanes[j] += static_cast<double>(g) * b[i + j];
        }
#endif
    double sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (; i < n; ++i) sum += static_cast<double>(w != nullptr ? a[i] * (offset + w[i]) : a[i]) * b[i];
    return sum;
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, std::int64_t rows, std::int64_t dim,
                     float eps, bool weight_offset) {
    thread_pool().parallel_for(rows, row_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = begin; r < end; ++r) {
            const float* xr = x + r * dim;
            float* yr = out + r * dim;
            const double sum = double_dot(xr, nullptr, 0.0f, xr, dim);
            const float mean = static_cast<float>(sum / static_cast<double>(dim));
            const float scale = 1.0f / std::sqrt(mean + eps);
            if (rstd != nullptr) rstd[r] = scale;
            const float offset = weight_offset ? 1.0f : 0.0f;  // adding 0 to w is exact
            std::int64_t i = 0;
#ifdef KINDRED_AVX2
            i = cpu::vector_steps(dim, [&](auto lanes, std::int64_t at) {
                using L = decltype(lanes);
                L::store(yr + at, (L::load(xr + at) * L::set1(scale)) * (L::set1(offset) + L::load(w + at)));
            });
#endif
            for (; i < dim; ++i) yr[i] = (xr[i] * scale) * (offset + w[i]);
        }
    });
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w,
                      std::int64_t rows, std::int64_t dim, bool weight_offset) {
    const float offset = weight_offset ? 1.0f : 0.0f;
    // dx: rows are independent. The row's Σ g·x̂ accumulates in double like the forward's Σ x².
    thread_pool().parallel_for(rows, row_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = begin; r < end; ++r) {
            const float* xr = x + r * dim;
            const float* dyr = dy + r * dim;
            const float scale = rstd[r];
            const double dot = double_dot(dyr, w, offset, xr, dim);
            const float mean = static_cast<float>(dot / static_cast<double>(dim)) * scale;  // mean(g · x̂)
            float* dxr = dx + r * dim;
            std::int64_t i = 0;
#ifdef KINDRED_AVX2
            // The fused multiply-adds the compiler forms from the plain loop below.
            i = cpu::vector_steps(dim, [&](auto lanes, std::int64_t at) {
                using L = decltype(lanes);
                const auto x_term = (L::load(xr + at) * L::set1(scale)) * L::set1(mean);
                const auto difference = L::fma(L::load(dyr + at), L::set1(offset) + L::load(w + at), -x_term);
                L::store(dxr + at, L::fma(L::set1(scale), difference, L::load(dxr + at)));
            });
#endif
            for (; i < dim; ++i) dxr[i] += scale * (dyr[i] * (offset + w[i]) - xr[i] * scale * mean);
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
