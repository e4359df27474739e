// kernels/matmul.h — products against frozen weights stored in any DType (fp32, fp16, bf16,
// ggml block quantizations), and the embedding-row lookup from such a table.
// Two paths, chosen by token count: a few tokens (decode) use a direct mat-vec that dequantizes
// each weight block on the fly into fp32 FMAs; more tokens (prompt processing, training) dequantize
// panels of weight rows into a per-thread fp32 scratch and multiply with kernels/cpu/gemm_f32.h's
// sgemm (OpenBLAS, or Kindred's own AVX-512/AVX2 GEMM where OpenBLAS's core does not use the
// CPU's widest vectors). Weights are never dequantized whole. Work is split over core/thread_pool, one sgemm per
// thread.
// Products take a Precision. F32 (the default, and the exact mode): as above. BF16, QLoRA's compute
// dtype (bnb_4bit_compute_dtype=bfloat16), for products of many tokens: activations and
// dequantized weights rounded to bfloat16, products summed in fp32, on AMX tiles
// (kernels/cpu/bf16_gemm.h; measured 3.5x OpenBLAS sgemm's GFLOP/s on one core of a Sapphire
// Rapids). On a CPU without AMX-BF16, BF16 computes in fp32: rounding there would only lose
// precision. Int8, inference's default (as llama.cpp computes on the CPU): products against weights
// of a type with an integer dot (Q4_0, Q4_1, Q5_0, Q8_0, MXFP4, Q4_K, Q6_K) quantize the
// activations to 8-bit blocks and multiply in integers (kernels/cpu/int8_dot.h: relative to fp32
// each activation moves by at most half its block's amax / 127), at every token count, so that a
// token's result is the same bits alone or among any number of other tokens (what the server's
// batches rely on). Everything else in Int8 (other weight types, backward passes) computes as F32.
// Backward passes (QLoRA: the base weights are frozen, so a quantized weight only passes the
// gradient through to its input; fp32 matrices that are trained get a weight gradient) ADD into
// their gradient buffers, as kernels/lora.h does; the caller zeroes them once per cycle.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/aligned.h"
#include "core/dtype.h"

namespace kindred::kernels {

enum class Precision { F32, BF16, Int8 };

// What products asked to run in `precision` run in on this CPU (BF16 without AMX-BF16: F32;
// Int8 runs everywhere, with portable code where the build lacks AVX2).
Precision effective_precision(Precision precision);
// "fp32", "bf16" or "int8" (the recipe's and the CLI's spelling), and back (nullopt for others).
const char* precision_name(Precision precision);
std::optional<Precision> parse_precision(std::string_view name);
// Whether Int8 multiplies more than four tokens in AMX-INT8 tiles on this CPU and build.
bool int8_tiles_available();

struct PackedBf16;

// A [rows x cols] matrix stored row-major in `type`; a quantized row is cols / block_size blocks.
// `packed`, when set, is the same matrix already rounded and packed for Precision::BF16 (see
// pack_bf16): BF16 products read it instead of dequantizing and packing panels of `data`.
struct Matrix {
    DType type = DType::F32;
    std::int64_t rows = 0;
    std::int64_t cols = 0;
    const void* data = nullptr;
    const PackedBf16* packed = nullptr;
};

// A frozen weight converted once into both operands its BF16 products read on AMX (the tile
// layout of kernels/cpu/bf16_gemm.h): wᵀ for matmul_forward, w for matmul_backward_input. For a
// caller that multiplies by the same weight many times (training: twice per micro-batch), so
// that each product skips dequantizing and packing; the products give the same bits either way
// (the same bf16 values meet the same fp32 sums in the same order).
struct PackedBf16 {
    AlignedArray<std::uint16_t> transposed;  // B = wᵀ: contraction over w's columns
    AlignedArray<std::uint16_t> plain;       // B = w: contraction over w's rows
};

// Bytes pack_bf16 allocates for w.
std::int64_t packed_bf16_bytes(const Matrix& w);
// w packed for BF16 products, using core/thread_pool. Throws Error where BF16 runs in fp32 (no
// AMX-BF16) or w cannot be dequantized.
PackedBf16 pack_bf16(const Matrix& w);

// y[tokens x w.rows] = x[tokens x w.cols] · wᵀ (+ bias[w.rows] when not null).
// Throws Error when w.cols is not a whole number of blocks or the type cannot be dequantized.
void matmul_forward(float* y, const float* x, const Matrix& w, const float* bias, std::int64_t tokens,
                    Precision precision = Precision::F32);

// dx[tokens x w.cols] += dy[tokens x w.rows] · w, for every type matmul_forward accepts. Each
// thread owns a range of dx columns (whole weight blocks) and walks panels of weight rows
// restricted to those columns, dequantized into per-thread scratch, so no two threads write the
// same dx element. Throws Error as matmul_forward does.
void matmul_backward_input(float* dx, const float* dy, const Matrix& w, std::int64_t tokens,
                           Precision precision = Precision::F32);

// For a trained fp32 weight [rows x cols] used as y = x · wᵀ + bias:
// dw[rows x cols] += dyᵀ · x, dbias[rows] += Σ_t dy[t]; either pointer may be null.
void matmul_backward_weight(float* dw, float* dbias, const float* dy, const float* x, std::int64_t rows,
                            std::int64_t cols, std::int64_t tokens);

// out[tokens x table.cols] = rows ids[t] of `table`, dequantized. Throws Error for an id outside
// [0, table.rows).
void embedding_forward(float* out, const std::int32_t* ids, std::int64_t tokens, const Matrix& table);

}  // namespace kindred::kernels
