// kernels/matmul.h — products against frozen weights stored in any DType (fp32, fp16, bf16,
// ggml block quantizations), and the embedding-row lookup from such a table.
// Two paths, chosen by token count: a few tokens (decode) use a direct mat-vec that dequantizes
// each weight block on the fly into fp32 FMAs; more tokens (prompt processing, training) dequantize
// panels of weight rows into a per-thread fp32 scratch and multiply with OpenBLAS sgemm.
// Weights are never dequantized whole. Work is split over core/thread_pool; OpenBLAS is pinned to
// one thread per call so that it does not fight the pool for cores.
// Backward passes (QLoRA: the base weights are frozen, so a quantized weight only passes the
// gradient through to its input; fp32 matrices that are trained get a weight gradient) ADD into
// their gradient buffers, as kernels/lora.h does; the caller zeroes them once per cycle.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace kindred::kernels {

// A [rows x cols] matrix stored row-major in `type`; a quantized row is cols / block_size blocks.
struct Matrix {
    DType type = DType::F32;
    std::int64_t rows = 0;
    std::int64_t cols = 0;
    const void* data = nullptr;
};

// y[tokens x w.rows] = x[tokens x w.cols] · wᵀ (+ bias[w.rows] when not null).
// Throws Error when w.cols is not a whole number of blocks or the type cannot be dequantized.
void matmul_forward(float* y, const float* x, const Matrix& w, const float* bias, std::int64_t tokens);

// dx[tokens x w.cols] += dy[tokens x w.rows] · w, for every type matmul_forward accepts. Each
// thread owns a range of dx columns (whole weight blocks) and walks panels of weight rows
// restricted to those columns, dequantized into per-thread scratch, so no two threads write the
// same dx element. Throws Error as matmul_forward does.
void matmul_backward_input(float* dx, const float* dy, const Matrix& w, std::int64_t tokens);

// For a trained fp32 weight [rows x cols] used as y = x · wᵀ + bias:
// dw[rows x cols] += dyᵀ · x, dbias[rows] += Σ_t dy[t]; either pointer may be null.
void matmul_backward_weight(float* dw, float* dbias, const float* dy, const float* x, std::int64_t rows,
                            std::int64_t cols, std::int64_t tokens);

// out[tokens x table.cols] = rows ids[t] of `table`, dequantized. Throws Error for an id outside
// [0, table.rows).
void embedding_forward(float* out, const std::int32_t* ids, std::int64_t tokens, const Matrix& table);

}  // namespace kindred::kernels
