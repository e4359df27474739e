// kernels/cuda/dequantize.cu — stored weight blocks (ggml layouts) to fp32 / fp16 / bf16 on the GPU,
// bit-exact with kernels/cpu/dequantize.cpp (dequant_element.cuh). One thread per output element: the
// output dominates the bytes (4 or 2 per element against at most ~1.1 read), so consecutive
// threads writing consecutive elements keeps the stores coalesced; the block headers a warp
// shares are read through L1.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dequant_element.cuh"
#include "kernels/cuda_backend.h"

namespace kindred::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ T convert(float value);
template <>
__device__ __forceinline__ float convert<float>(float value) {
    return value;
}
template <>
__device__ __forceinline__ __half convert<__half>(float value) {
    return __float2half_rn(value);
}
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16>(float value) {
    return __float2bfloat16_rn(value);
}

template <DType type, typename Out>
__global__ void dequantize_kernel(const std::uint8_t* __restrict__ src, Out* __restrict__ dst, long long n) {
    const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = convert<Out>(dequant_element<type>(src, i, n));
}

template <DType type, typename Out>
void launch(const void* src, void* dst, long long n) {
    // A grid-stride loop capped at a few waves: enough blocks to fill every multiprocessor without
    // a grid dimension that overflows for multi-billion-element tensors.
    const unsigned int blocks = std::min(detail::blocks_for(n, kThreads), 65535u * 8u);
    dequantize_kernel<type, Out>
        <<<blocks, kThreads>>>(static_cast<const std::uint8_t*>(src), static_cast<Out*>(dst), n);
    KINDRED_CUDA_CHECK_LAUNCH("dequantize_kernel");
}

template <typename Out>
void dispatch(DType type, const void* src, void* dst, long long n) {
    switch (type) {
        case DType::F32: return launch<DType::F32, Out>(src, dst, n);
        case DType::F16: return launch<DType::F16, Out>(src, dst, n);
        case DType::BF16: return launch<DType::BF16, Out>(src, dst, n);
        case DType::Q4_0: return launch<DType::Q4_0, Out>(src, dst, n);
        case DType::Q4_1: return launch<DType::Q4_1, Out>(src, dst, n);
        case DType::Q5_0: return launch<DType::Q5_0, Out>(src, dst, n);
        case DType::Q8_0: return launch<DType::Q8_0, Out>(src, dst, n);
        case DType::Q4_K: return launch<DType::Q4_K, Out>(src, dst, n);
        case DType::Q6_K: return launch<DType::Q6_K, Out>(src, dst, n);
        case DType::MXFP4: return launch<DType::MXFP4, Out>(src, dst, n);
        case DType::NF4: return launch<DType::NF4, Out>(src, dst, n);
        default:
            throw Error(std::string("cuda::dequantize: type ") + std::string(dtype_name(type)) +
                        " has no CUDA dequantizer");
    }
}

}  // namespace

void dequantize(DType type, const void* src, void* dst, OutputType out, std::int64_t n) {
    if (n < 0) throw Error("cuda::dequantize: negative element count " + std::to_string(n));
    const auto& info = dtype_info(type);
    if (n % info.block_size != 0)
        throw Error("cuda::dequantize: " + std::to_string(n) + " elements are not whole " + std::string(info.name) +
                    " blocks of " + std::to_string(info.block_size));
    if (n == 0) return;
    if (src == nullptr || dst == nullptr) throw Error("cuda::dequantize: null device pointer");
    switch (out) {
        case OutputType::F32: return dispatch<float>(type, src, dst, n);
        case OutputType::F16: return dispatch<__half>(type, src, dst, n);
        case OutputType::BF16: return dispatch<__nv_bfloat16>(type, src, dst, n);
    }
}

}  // namespace kindred::cuda
