// kernels/cpu/int8_dot.h — products of quantized weight rows with activations quantized to 8 bits
// (what llama.cpp's CPU backend does for every quantized type): the tokens' activations are
// quantized once per product, then each weight block meets each token's block in integer
// multiply-adds (AVX2 maddubs/madd), one fp32 scale per block pair. Internal to kernels/cpu;
// kernels/matmul.h's Precision::Int8 reaches it.
//
// Activations: blocks of 32 with an fp32 scale d = amax / 127 and q = round(x / d) (half away
// from zero, computed as x · (1/d)): the values of ggml's Q8_0 (gguf-py's quantizer gives the same
// bytes, tests/kernels/test_int8_dot.cpp), with d kept in fp32 rather than rounded to fp16, and
// each block's d · Σq for the weight formats' per-block min terms (Q4_1, Q4_K), as ggml's Q8_1
// carries. K-quants use the same 32-blocks (their sub-blocks are 32 or, for Q6_K, two 16s with
// integer scales applied inside the integer sum), where ggml uses one scale per 256 (Q8_K).
//
// For more than four tokens every weight row is first unpacked to one form: a signed byte per
// element, an fp32 scale (and min) per 32-block, and for Q6_K the 16-element sub-block scales; the
// AVX2 code then reads each unpacked block once for up to four tokens. Up to four tokens (decode)
// read a Q4_0, Q4_1, Q8_0 or MXFP4 row directly, each block unpacked in registers to the same
// values. A token's result is
//   Σ_lanes (Σ_b fl(d_w[b] · d_x[b]) · lane_b) + Σ_b m_w[b] · (d_x[b] · Σq_x[b])
// where lane_b is one of eight exact integer partial sums of the block (elements 4l..4l+3), each
// lane accumulated by fused multiply-adds in block order, the lanes summed pairwise (4+4, 2+2,
// 1+1) and the min terms by fused multiply-adds in block order. That order depends on nothing but
// the row and the token, so a token's result is the same bits alone or among any number of
// tokens, and the scalar code (non-AVX2 builds; tests) gives the same bits as the AVX2 code.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace kindred::kernels::cpu::int8 {

constexpr std::int64_t block = 32;

// Whether rows of `type` have an integer dot here: Q4_0, Q4_1, Q5_0, Q8_0, MXFP4, Q4_K, Q6_K.
bool supported(DType type);

enum class Code { Native, Scalar };  // Native: AVX2 when the build has it

// `tokens` rows of `cols` (a multiple of 32) activations quantized per block; storage is reused
// across calls.
struct QuantizedRows {
    std::int64_t tokens = 0, cols = 0, blocks = 0;
    std::vector<std::int8_t> q;       // [tokens x cols]
    std::vector<float> scale;         // [tokens x blocks] d (0 for an all-zero block)
    std::vector<float> scaled_sum;    // [tokens x blocks] d · Σ q

    // Quantizes x [tokens x cols]. A block whose d would be below FLT_MIN (|x| < 1.5e-36) is all
    // zeros (its 1/d would overflow); a block holding inf or NaN gets d = NaN, so its products are
    // NaN as they would be in fp32. Scalar runs the portable code (the same bits).
    void quantize(const float* x, std::int64_t tokens, std::int64_t cols, Code code = Code::Native);
};

// One weight row in the form the dot reads (see above); storage is reused across rows.
struct UnpackedRow {
    std::vector<std::int8_t> q;            // [cols]
    std::vector<float> scale;              // [blocks]
    std::vector<float> min;                // [blocks], Q4_1 and Q4_K only
    std::vector<std::int16_t> sub_scales;  // [blocks x 16], Q6_K only: 8 lanes of each half's scale
};

// y[t · y_stride] = the row's product with token t of x, for every token of x. `row` holds
// x.cols elements of `type` (which must be supported). Scalar runs the portable code (the tests
// compare it with the AVX2 code bit for bit).
void dot_row(DType type, const std::uint8_t* row, const QuantizedRows& x, float* y, std::int64_t y_stride,
             UnpackedRow& scratch, Code code = Code::Native);

}  // namespace kindred::kernels::cpu::int8
