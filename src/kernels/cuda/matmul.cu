// kernels/cuda/matmul.cu — products against weights stored in any dequantizable DType. Two paths,
// as on the CPU: up to kMatvecMaxTokens tokens (decode) a fused kernel reads each stored weight
// element once, dequantizes it in registers and uses it for every token (fp32 throughout); more
// tokens dequantize the weight on the device into the GEMM's operand type (cuda::dequantize,
// bit-exact), round the activations to it when it is fp16/bf16 (cuda::dequantize from F32 too),
// and multiply with cuBLAS at fp32
// accumulation. Weights already stored in the operand type are used in place.
// Row-major products map onto column-major cuBLAS by computing cᵀ = op(b)ᵀ · aᵀ: a row-major
// [r x c] array is the column-major [c x r] array with leading dimension c.
#include <algorithm>
#include <climits>
#include <string>

#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dequant_element.cuh"
#include "kernels/cuda_backend.h"

namespace kindred::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned int kMaxBlocks = 65535u * 8u;

std::size_t operand_bytes(GemmPrecision precision) {
    return operand_type(precision) == OutputType::F32 ? 4 : 2;
}

bool stored_as(DType type, OutputType out) {
    return (type == DType::F32 && out == OutputType::F32) || (type == DType::F16 && out == OutputType::F16) ||
           (type == DType::BF16 && out == OutputType::BF16);
}

__global__ void broadcast_rows_kernel(float* __restrict__ y, const float* __restrict__ row, long long rows,
                                      long long cols) {
    const long long n = rows * cols;
    const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = row[i % cols];
}

// The fused mat-vec: one warp per output row, lanes striding over the row's elements (for 32-element
// blocks one warp step is exactly one block, read once), each element dequantized in registers as
// dequantize does and multiplied into every token's partial sum, which the warp then reduces.
// Elements are addressed by their index in the whole weight (row · cols + column): NF4's blocks find
// their scales from it (core/dtype.h's Nf4Layout), and for the other types, whose rows are whole
// blocks, it lands on the same bytes as the row's own offset would.
// The bytes moved are the stored weight's plus x and y: the floor for decode.
constexpr std::int64_t kMatvecMaxTokens = 4;
constexpr int kMatvecWarps = 8;

template <DType type, int kTokens>
__global__ void __launch_bounds__(kMatvecWarps * 32)
    matvec_kernel(float* __restrict__ y, const float* __restrict__ x, const std::uint8_t* __restrict__ w,
                  const float* __restrict__ bias, long long rows, long long cols) {
    const long long row = static_cast<long long>(blockIdx.x) * kMatvecWarps + threadIdx.x / 32;
    if (row >= rows) return;  // whole warps leave together, so the shuffles below see all 32 lanes
    const int lane = static_cast<int>(threadIdx.x % 32);
    float sum[kTokens];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) sum[t] = 0.0f;
    for (long long e = lane; e < cols; e += 32) {
        const float v = dequant_element<type>(w, row * cols + e, rows * cols);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) sum[t] = fmaf(v, x[t * cols + e], sum[t]);
    }
#pragma unroll
    for (int t = 0; t < kTokens; ++t)
        for (int offset = 16; offset > 0; offset /= 2) sum[t] += __shfl_xor_sync(0xffffffffu, sum[t], offset);
    if (lane == 0) {
        const float b = bias != nullptr ? bias[row] : 0.0f;
#pragma unroll
        for (int t = 0; t < kTokens; ++t) y[t * rows + row] = sum[t] + b;
    }
}

template <DType type>
void launch_matvec(float* y, const float* x, const kernels::Matrix& w, const float* bias, std::int64_t tokens) {
    const unsigned int blocks = detail::blocks_for(w.rows, kMatvecWarps);
    const auto* weight = static_cast<const std::uint8_t*>(w.data);
    constexpr unsigned int threads = kMatvecWarps * 32;
    switch (tokens) {
        case 1: matvec_kernel<type, 1><<<blocks, threads>>>(y, x, weight, bias, w.rows, w.cols); break;
        case 2: matvec_kernel<type, 2><<<blocks, threads>>>(y, x, weight, bias, w.rows, w.cols); break;
        case 3: matvec_kernel<type, 3><<<blocks, threads>>>(y, x, weight, bias, w.rows, w.cols); break;
        default: matvec_kernel<type, 4><<<blocks, threads>>>(y, x, weight, bias, w.rows, w.cols); break;
    }
    KINDRED_CUDA_CHECK_LAUNCH("matvec_kernel");
}

void matvec(float* y, const float* x, const kernels::Matrix& w, const float* bias, std::int64_t tokens) {
    switch (w.type) {
        case DType::F32: return launch_matvec<DType::F32>(y, x, w, bias, tokens);
        case DType::F16: return launch_matvec<DType::F16>(y, x, w, bias, tokens);
        case DType::BF16: return launch_matvec<DType::BF16>(y, x, w, bias, tokens);
        case DType::Q4_0: return launch_matvec<DType::Q4_0>(y, x, w, bias, tokens);
        case DType::Q4_1: return launch_matvec<DType::Q4_1>(y, x, w, bias, tokens);
        case DType::Q5_0: return launch_matvec<DType::Q5_0>(y, x, w, bias, tokens);
        case DType::Q8_0: return launch_matvec<DType::Q8_0>(y, x, w, bias, tokens);
        case DType::Q4_K: return launch_matvec<DType::Q4_K>(y, x, w, bias, tokens);
        case DType::Q6_K: return launch_matvec<DType::Q6_K>(y, x, w, bias, tokens);
        case DType::MXFP4: return launch_matvec<DType::MXFP4>(y, x, w, bias, tokens);
        case DType::NF4: return launch_matvec<DType::NF4>(y, x, w, bias, tokens);
        default:
            throw Error(std::string("cuda::Matmul::forward: type ") + std::string(dtype_name(w.type)) +
                        " has no CUDA dequantizer");
    }
}

int checked_int(std::int64_t value, const char* what) {
    if (value < 0 || value > INT_MAX)
        throw Error(std::string("cuda::Matmul: ") + what + " = " + std::to_string(value) +
                    " is outside cuBLAS's int range");
    return static_cast<int>(value);
}

void check_weight(const kernels::Matrix& w, std::int64_t tokens, const char* op) {
    if (w.rows < 0 || w.cols <= 0 || tokens < 0)
        throw Error(std::string("cuda::Matmul::") + op + ": bad shape: weight " + std::to_string(w.rows) + " x " +
                    std::to_string(w.cols) + ", " + std::to_string(tokens) + " tokens");
    if (w.cols % dtype_info(w.type).block_size != 0)
        throw Error(std::string("cuda::Matmul::") + op + ": " + std::to_string(w.cols) + " columns are not whole " +
                    std::string(dtype_name(w.type)) + " blocks");
}

}  // namespace

std::string_view precision_name(GemmPrecision precision) {
    switch (precision) {
        case GemmPrecision::F32: return "fp32";
        case GemmPrecision::TF32: return "tf32";
        case GemmPrecision::F16: return "fp16";
        case GemmPrecision::BF16: return "bf16";
    }
    return "?";
}

OutputType operand_type(GemmPrecision precision) {
    switch (precision) {
        case GemmPrecision::F16: return OutputType::F16;
        case GemmPrecision::BF16: return OutputType::BF16;
        case GemmPrecision::F32:
        case GemmPrecision::TF32: break;
    }
    return OutputType::F32;
}

struct Matmul::Impl {
    cublasHandle_t handle = nullptr;
    DeviceBuffer weight;       // the dequantized weight, operand_type(precision)
    DeviceBuffer activations;  // x or dy rounded to fp16 / bf16

    // The weight as a device operand of `precision`: in place when already stored so.
    const void* weight_operand(const kernels::Matrix& w, GemmPrecision precision) {
        const OutputType out = operand_type(precision);
        if (stored_as(w.type, out)) return w.data;
        const std::int64_t elements = w.rows * w.cols;
        grow(weight, static_cast<std::size_t>(elements) * operand_bytes(precision));
        dequantize(w.type, w.data, weight.data(), out, elements);
        return weight.data();
    }

    // fp32 activations as a device operand of `precision`.
    const void* activation_operand(const float* x, std::int64_t n, GemmPrecision precision) {
        const OutputType out = operand_type(precision);
        if (out == OutputType::F32) return x;
        grow(activations, static_cast<std::size_t>(n) * 2);
        dequantize(DType::F32, x, activations.data(), out, n);  // fp32 -> fp16/bf16, round to nearest
        return activations.data();
    }

    // Scratch only grows; cudaFree waits for queued work that may still read the old buffer.
    static void grow(DeviceBuffer& buffer, std::size_t bytes) {
        if (buffer.bytes() < bytes) {
            buffer = DeviceBuffer();
            buffer = DeviceBuffer(bytes);
        }
    }
};

Matmul::Matmul() : impl_(std::make_unique<Impl>()) { KINDRED_CUBLAS_CHECK(cublasCreate(&impl_->handle)); }

Matmul::~Matmul() {
    if (impl_ && impl_->handle != nullptr) (void)cublasDestroy(impl_->handle);
}

void Matmul::gemm(float* c, const void* a, const void* b, std::int64_t m, std::int64_t n, std::int64_t k,
                  bool b_transposed, GemmPrecision precision, float beta) {
    const int im = checked_int(m, "m");
    const int in = checked_int(n, "n");
    const int ik = checked_int(k, "k");
    if (im == 0 || in == 0) return;
    cudaDataType_t operand = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    switch (precision) {
        case GemmPrecision::F32: break;
        case GemmPrecision::TF32: compute = CUBLAS_COMPUTE_32F_FAST_TF32; break;
        case GemmPrecision::F16: operand = CUDA_R_16F; break;
        case GemmPrecision::BF16: operand = CUDA_R_16BF; break;
    }
    const float alpha = 1.0f;
    // cᵀ[n x m] = op(b)ᵀ[n x k] · aᵀ[k x m], where op(b) is the [k x n] factor. The column-major
    // view of a row-major array is its transpose: for a stored [n x k] b (b_transposed) that view
    // is [k x n] with leading dimension k and CUBLAS_OP_T turns it into op(b)ᵀ = b; for a stored
    // [k x n] b the view, [n x k] with leading dimension n, already is op(b)ᵀ.
    KINDRED_CUBLAS_CHECK(cublasGemmEx(impl_->handle, b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, in, im, ik,
                                      &alpha, b, operand, b_transposed ? ik : in, a, operand, ik, &beta, c,
                                      CUDA_R_32F, in, compute, CUBLAS_GEMM_DEFAULT));
}

void Matmul::forward(float* y, const float* x, const kernels::Matrix& w, const float* bias, std::int64_t tokens,
                     GemmPrecision precision) {
    check_weight(w, tokens, "forward");
    if (tokens == 0 || w.rows == 0) return;
    if (tokens <= kMatvecMaxTokens) {
        if (w.rows > 0x7fffffffLL * kMatvecWarps)
            throw Error("cuda::Matmul::forward: " + std::to_string(w.rows) + " rows exceed one grid");
        return matvec(y, x, w, bias, tokens);
    }
    const void* weight = impl_->weight_operand(w, precision);
    const void* input = impl_->activation_operand(x, tokens * w.cols, precision);
    float beta = 0.0f;
    if (bias != nullptr) {
        // y starts as the bias in every row and the GEMM (beta = 1) adds the product onto it.
        const unsigned int blocks = std::min(detail::blocks_for(tokens * w.rows, kThreads), kMaxBlocks);
        broadcast_rows_kernel<<<blocks, kThreads>>>(y, bias, tokens, w.rows);
        KINDRED_CUDA_CHECK_LAUNCH("broadcast_rows_kernel");
        beta = 1.0f;
    }
    gemm(y, input, weight, tokens, w.rows, w.cols, true, precision, beta);
}

void Matmul::backward_input(float* dx, const float* dy, const kernels::Matrix& w, std::int64_t tokens,
                            GemmPrecision precision) {
    check_weight(w, tokens, "backward_input");
    if (tokens == 0 || w.rows == 0) return;
    const void* weight = impl_->weight_operand(w, precision);
    const void* grad = impl_->activation_operand(dy, tokens * w.rows, precision);
    gemm(dx, grad, weight, tokens, w.cols, w.rows, false, precision, 1.0f);
}

}  // namespace kindred::cuda
