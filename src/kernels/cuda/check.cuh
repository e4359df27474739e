// kernels/cuda/check.cuh — error checking shared by the .cu files: every CUDA runtime and cuBLAS
// call goes through one of these macros, and every kernel launch is followed by
// KINDRED_CUDA_CHECK_LAUNCH, so that a failure throws kindred::Error naming the call and file:line
// instead of surfacing later as garbage. (kindred::fail is not used in .cu files: nvcc's front end
// rejects fmt's compile-time format strings.)
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace kindred::cuda::detail {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
    if (status != cudaSuccess) throw_cuda_error(status, call, file, line);
}
inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(status, call, file, line);
}

// Grid size for `count` independent items at `per_block` items per block; count > 0.
inline unsigned int blocks_for(long long count, long long per_block) {
    return static_cast<unsigned int>((count + per_block - 1) / per_block);
}

}  // namespace kindred::cuda::detail

#define KINDRED_CUDA_CHECK(call) ::kindred::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define KINDRED_CUBLAS_CHECK(call) ::kindred::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)
// After a <<<...>>> launch: configuration errors are reported at once by cudaGetLastError.
#define KINDRED_CUDA_CHECK_LAUNCH(kernel_name) \
    ::kindred::cuda::detail::check_cuda(cudaGetLastError(), "launch of " kernel_name, __FILE__, __LINE__)
