// kernels/matmul.h — products against frozen weights stored in any DType (fp32, fp16, bf16,
// ggml block quantizations), and the embedding-row lookup from such a table.
// Two paths, chosen by token count: a few tokens (decode) use a direct mat-vec that dequantizes
// each weight block on the fly into fp32 FMAs; more tokens (prompt processing, training) dequantize
// panels of weight rows into a per-thread fp32 scratch and multiply with OpenBLAS sgemm.
// Weights are never dequantized whole. Work is split over core/thread_pool; OpenBLAS is pinned to
// one thread per call so that it does not fight the pool for cores.
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

// out[tokens x table.cols] = rows ids[t] of `table`, dequantized. Throws Error for an id outside
// [0, table.rows).
void embedding_forward(float* out, const std::int32_t* ids, std::int64_t tokens, const Matrix& table);

}  // namespace kindred::kernels
