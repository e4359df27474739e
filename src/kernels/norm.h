// kernels/norm.h — RMSNorm over the last dimension.
// Llama-family norms multiply by w; Gemma's by (1 + w) (weight_offset). rstd is written per row
// when not null so that the backward pass does not recompute it.
#pragma once

#include <cstdint>

namespace kindred::kernels {

// out[rows x dim] = x * rsqrt(mean(x^2) + eps) * (w or 1 + w); out may alias x.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, std::int64_t rows, std::int64_t dim,
                     float eps, bool weight_offset);

// Backward of rmsnorm_forward given the forward's input x and rstd. With x̂ = x · rstd and
// g = dy · (w or 1 + w): dx[row] += rstd · (g − x̂ · mean(g · x̂)); dw[dim] += Σ_rows dy · x̂ when
// dw is not null (only a trained norm weight needs it; the offset does not change it).
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* rstd, const float* w,
                      std::int64_t rows, std::int64_t dim, bool weight_offset);

}  // namespace kindred::kernels
