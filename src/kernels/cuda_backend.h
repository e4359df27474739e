// kernels/cuda_backend.h — the CUDA backend's entry points, callable from plain C++ without CUDA
// headers. Declared only when the build has the backend (KINDRED_HAVE_CUDA, set by CMake when nvcc is
// found); the definitions live in kernels/cuda/*.cu. Every pointer named "device" below is device
// memory (DeviceBuffer); kernels::Matrix is reused with `data` pointing at device memory.
// Numerics follow the CPU kernels: dequantize is bit-exact with kernels/dequantize.h, rmsnorm_forward
// with kernels/norm.h up to the order of one double-precision sum; matmuls differ from the CPU's
// only by the GEMM precision chosen (GemmPrecision), which the tests bound by relative error.
// Work is queued on the default stream in call order; results are visible to the host after a
// download or synchronize(). Every CUDA and cuBLAS failure throws kindred::Error naming the call
// and its file:line.
#pragma once

#if defined(KINDRED_HAVE_CUDA)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "kernels/matmul.h"

namespace kindred::cuda {

// Devices the runtime sees; 0 (never an exception) when there is no driver or no GPU, so that
// callers and tests can fall back to the CPU.
int device_count();

struct DeviceInfo {
    std::string name;
    int compute_major = 0;
    int compute_minor = 0;
    int multiprocessors = 0;
    std::size_t global_bytes = 0;
    std::size_t l2_bytes = 0;
};
// Device 0's properties; throws Error when there is none.
DeviceInfo device_info();

// Waits for all queued device work; an asynchronous kernel fault surfaces here as Error.
void synchronize();

// Owns one cudaMalloc allocation (plain device memory, never managed memory).
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& other) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* data() const { return data_; }
    std::size_t bytes() const { return bytes_; }
    template <typename T>
    T* as() const {
        return static_cast<T*>(data_);
    }
    // Synchronous copies of `bytes` at byte `offset`; throw Error when the range exceeds the buffer.
    void upload(const void* host, std::size_t bytes, std::size_t offset = 0);
    void download(void* host, std::size_t bytes, std::size_t offset = 0) const;
    // Sets every byte (0xFF makes every float and half a NaN: the tests' poison).
    void fill_bytes(std::uint8_t value);

private:
    void* data_ = nullptr;
    std::size_t bytes_ = 0;
};

// Element type written by dequantize: fp32, or fp16 / bf16 bits rounded to nearest-even from the
// fp32 value (so F16 output equals fp32_to_fp16(dequantize_row(...)) bit for bit).
enum class OutputType { F32, F16, BF16 };

// Dequantizes `n` elements of `type` from device `src` (matrix_bytes(type, n) bytes; for NF4 a whole
// tensor, as kernels/dequantize.h's dequantize_row) into device `dst`. Supports F32, F16, BF16,
// Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K, MXFP4, NF4; throws Error for other types, for negative `n` or
// when `n` is not a whole number of blocks.
void dequantize(DType type, const void* src, void* dst, OutputType out, std::int64_t n);

// Operand precision of a GEMM; accumulation is fp32 in all four. F32 is full fp32 (no TF32);
// TF32 rounds operands to 10 mantissa bits on the tensor cores; F16 / BF16 convert both operands.
enum class GemmPrecision { F32, TF32, F16, BF16 };
std::string_view precision_name(GemmPrecision precision);
// Device element type the operands of `precision` are stored in.
OutputType operand_type(GemmPrecision precision);

// Products against weights stored in any dequantizable DType, through cuBLAS. Holds the cuBLAS
// handle and device scratch (the dequantized weight, the converted activations) that grows to
// the largest call and is reused. Not thread-safe: one per thread.
class Matmul {
public:
    Matmul();
    ~Matmul();
    Matmul(const Matmul&) = delete;
    Matmul& operator=(const Matmul&) = delete;

    // Same contract as kernels::matmul_forward, on device memory:
    // y[tokens x w.rows] = x[tokens x w.cols] · wᵀ (+ bias[w.rows] when not null).
    // Up to 4 tokens (decode) take a fused dequantize-dot kernel that reads the stored weight once
    // and computes in fp32 whatever `precision` says (at least as accurate as asked).
    void forward(float* y, const float* x, const kernels::Matrix& w, const float* bias, std::int64_t tokens,
                 GemmPrecision precision);
    // Same contract as kernels::matmul_backward_input: dx[tokens x w.cols] += dy[tokens x w.rows] · w.
    void backward_input(float* dx, const float* dy, const kernels::Matrix& w, std::int64_t tokens,
                        GemmPrecision precision);
    // The bare GEMM both use, on operands already stored as operand_type(precision), row-major:
    // c[m x n] = a[m x k] · (b_transposed ? b[n x k]ᵀ : b[k x n]) + beta · c, c fp32.
    void gemm(float* c, const void* a, const void* b, std::int64_t m, std::int64_t n, std::int64_t k,
              bool b_transposed, GemmPrecision precision, float beta);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Same contract as kernels::rmsnorm_forward, on device memory (out may alias x; rstd may be null).
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, std::int64_t rows, std::int64_t dim,
                     float eps, bool weight_offset);

}  // namespace kindred::cuda

#endif  // KINDRED_HAVE_CUDA
