// kernels/cpu/norm.cpp — RMSNorm; the mean of squares accumulates in double so that long rows
// (hidden sizes up to ~8k) lose no precision, then everything else is fp32 as in HF.
#include "kernels/norm.h"

#include <cmath>

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

}  // namespace kindred::kernels
