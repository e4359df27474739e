// kernels/dequantize.h — stored weight blocks (ggml block layouts) to float32.
// Results are bit-exact with ggml's reference dequantizers and gguf-py's gguf.quants: every
// output is the correctly rounded float32 of the same products and sums in the same order,
// never fused into FMAs (tests/kernels/test_dequantize.cpp proves it against goldens).
// Sits on the inference hot path (weight panels), so the common types have AVX2 paths.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace kindred {

// Dequantizes `n` consecutive elements of `type` from `src` (row_bytes(type, n) bytes) into
// `dst`. Supports the types whose dtype_info(type).dequantizable is true: F32, F16, BF16,
// Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K, MXFP4, and NF4 (bitsandbytes' values; kernels/quantize.h),
// for which `src` must be a whole NF4 tensor of `n` elements (matrix_bytes(NF4, n) bytes): its
// blocks' scales sit after all its codes (core/dtype.h's Nf4Layout). Throws Error for other types,
// for negative `n` or when `n` is not a whole number of blocks. NaN inputs give NaN (payload bits
// unspecified).
void dequantize_row(DType type, const void* src, float* dst, std::int64_t n);

// Elements [first, first + n) of the tensor of `elements` elements of `type` stored at `tensor`
// (matrix_bytes(type, elements) bytes), into `dst`: how a kernel reads part of one row of a weight
// matrix (first = row · cols + column), whatever its type. `first` and `n` are whole blocks.
void dequantize_span(DType type, const void* tensor, std::int64_t elements, std::int64_t first, float* dst,
                     std::int64_t n);

namespace detail {
// The portable one-element-at-a-time versions the SIMD paths must match bit for bit;
// exposed so tests can compare the two on large random inputs.
void dequantize_row_scalar(DType type, const void* src, float* dst, std::int64_t n);
void dequantize_span_scalar(DType type, const void* tensor, std::int64_t elements, std::int64_t first, float* dst,
                            std::int64_t n);
}  // namespace detail

}  // namespace kindred
