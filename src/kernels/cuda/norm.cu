// kernels/cuda/norm.cu — RMSNorm forward on the GPU, one block per row. As on the CPU, the mean of
// squares accumulates in double (only the summation order differs: per-thread strided partial sums,
// then a tree) and the rest is fp32 with correctly rounded sqrt and division (nvcc's defaults,
// -prec-sqrt / -prec-div), so the result matches kernels/norm.h to within that one sum's rounding.
#include <string>

#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda_backend.h"

namespace kindred::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__global__ void __launch_bounds__(kThreads)
    rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* __restrict__ w, long long dim,
                           float eps, bool weight_offset) {
    const long long row = blockIdx.x;
    const float* xr = x + row * dim;
    float* yr = out + row * dim;
    double sum = 0.0;
    for (long long i = threadIdx.x; i < dim; i += kThreads) {
        const double v = xr[i];
        sum += v * v;
    }
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
    __shared__ double partial[kWarps];
    __shared__ float shared_scale;
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    if (lane == 0) partial[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < kWarps; ++i) total += partial[i];
        const float mean = static_cast<float>(total / static_cast<double>(dim));
        const float scale = 1.0f / sqrtf(mean + eps);
        shared_scale = scale;
        if (rstd != nullptr) rstd[row] = scale;
    }
    // Every thread has read all of its x before this barrier, so writing out over x (aliasing) is safe.
    __syncthreads();
    const float scale = shared_scale;
    for (long long i = threadIdx.x; i < dim; i += kThreads) {
        const float weight = weight_offset ? 1.0f + w[i] : w[i];
        yr[i] = (xr[i] * scale) * weight;
    }
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, std::int64_t rows, std::int64_t dim,
                     float eps, bool weight_offset) {
    if (rows < 0 || dim <= 0)
        throw Error("cuda::rmsnorm_forward: bad shape " + std::to_string(rows) + " x " + std::to_string(dim));
    if (rows == 0) return;
    if (rows > 0x7fffffffLL) throw Error("cuda::rmsnorm_forward: " + std::to_string(rows) + " rows exceed one grid");
    rmsnorm_forward_kernel<<<static_cast<unsigned int>(rows), kThreads>>>(out, rstd, x, w, dim, eps, weight_offset);
    KINDRED_CUDA_CHECK_LAUNCH("rmsnorm_forward_kernel");
}

}  // namespace kindred::cuda
