// kernels/norm.h — RMSNorm over the last dimension.
// Llama-family norms multiply by w; Gemma's by (1 + w) (weight_offset). rstd is written per row
// when not null so that the backward pass (added beside this later) does not recompute it.
#pragma once

#include <cstdint>

namespace kindred::kernels {

// out[rows x dim] = x * rsqrt(mean(x^2) + eps) * (w or 1 + w); out may alias x.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, std::int64_t rows, std::int64_t dim,
                     float eps, bool weight_offset);

}  // namespace kindred::kernels
