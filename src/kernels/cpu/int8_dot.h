// kernels/cpu/int8_dot.h — products of quantized weight rows with activations quantized to 8 bits
// (what llama.cpp's CPU backend does for every quantized type): the tokens' activations are
// quantized once per product, then each weight block meets each token's block in integer
// multiply-adds, one fp32 scale per block pair. Internal to kernels/cpu; kernels/matmul.h's
// Precision::Int8 reaches it.
//
// Activations: blocks of 32 with an fp32 scale d = amax / 127 and q = round(x / d) (half away
// from zero, computed as x · (1/d)): the values of ggml's Q8_0 (gguf-py's quantizer gives the same
// bytes, tests/kernels/test_int8_dot.cpp), with d kept in fp32 rather than rounded to fp16, and
// each block's d · Σq for the weight formats' per-block min terms (Q4_1, Q4_K), as ggml's Q8_1
// carries. K-quants use the same 32-blocks (their sub-blocks are 32 or, for Q6_K, two 16s with
// integer scales applied inside the integer sum), where ggml uses one scale per 256 (Q8_K).
//
// A token's result, for weight blocks b with scale d_w[b] (and min m_w[b]) and the token's blocks
// with scale d_x[b] and scaled sum s_x[b]:
//   T_b = Σ_i q_w[i] · q_x[i] over the block, an exact integer (Q6_K: each 16-half's sum times
//         its integer sub-scale);
//   eight chains, block b feeding chain b mod 8 in block order:
//         c = fma(fl(d_w[b] · d_x[b]), T_b, c), then (Q4_1, Q4_K) c = fma(m_w[b], s_x[b], c);
//   the result ((c0 + c4) + (c2 + c6)) + ((c1 + c5) + (c3 + c7)).
// That order depends on nothing but the row and the token, so a token's result is the same bits
// alone or among any number of tokens, whichever code computes it: the portable code (non-AVX2
// builds; the tests' reference), the vector code (a row at a time: AVX2, with VNNI when the build
// has it, eight blocks' totals reduced into one register per token) or the AMX-INT8 tiles (16
// weight rows x 16 tokens per tile product, one block deep, so that every C tile is one T_b per
// row and token; the chains live in memory and are updated 16 rows at a time).
//
// Rows for the vector code: up to four tokens (decode) read a Q4_0, Q4_1, Q8_0 or MXFP4 row
// directly, each block unpacked in registers; otherwise every weight row is first unpacked to one
// form (a signed byte per element, or the nibble for the types with mins; an fp32 scale and min
// per 32-block; Q6_K's 16-element sub-block scales) that the code reads once per four tokens. The
// tiles interleave 16 unpacked rows in the layout AMX reads B in.
#pragma once

#include <cstdint>

#include "core/aligned.h"
#include "core/dtype.h"

namespace kindred::kernels::cpu::int8 {

constexpr std::int64_t block = 32;
constexpr std::int64_t tile = 16;  // tokens per AMX A tile, weight rows per B tile
// Up to this many tokens the rows are read packed (decode); more go to the tiles where there are.
constexpr std::int64_t packed_tokens = 4;

// Whether rows of `type` have an integer dot here: Q4_0, Q4_1, Q5_0, Q8_0, MXFP4, Q4_K, Q6_K.
bool supported(DType type);

enum class Code { Native, Scalar };  // Native: AVX2 (and VNNI) when the build has it

// `tokens` rows of `cols` (a multiple of 32) activations quantized per block; storage is reused
// across calls. Zero rows follow the last token up to a multiple of 16 (whole AMX tiles).
struct QuantizedRows {
    std::int64_t tokens = 0, cols = 0, blocks = 0;
    AlignedVector<std::int8_t> q;       // [round_up(tokens, 16) x cols]
    AlignedVector<float> scale;         // [round_up(tokens, 16) x blocks] d (0 for an all-zero block)
    AlignedVector<float> scaled_sum;    // [round_up(tokens, 16) x blocks] d · Σ q

    // Quantizes x [tokens x cols]. A block whose d would be below FLT_MIN (|x| < 1.5e-36) is all
    // zeros (its 1/d would overflow); a block holding inf or NaN gets d = NaN, so its products are
    // NaN as they would be in fp32. Scalar runs the portable code (the same bits).
    void quantize(const float* x, std::int64_t tokens, std::int64_t cols, Code code = Code::Native);

    // The same in two steps, so that threads can share the second: shape() sizes the storage for
    // x [tokens x cols] (and zeroes the padding), quantize_tokens() quantizes tokens
    // [first, first + count) of x.
    void shape(std::int64_t tokens, std::int64_t cols);
    void quantize_tokens(const float* x, std::int64_t first, std::int64_t count, Code code = Code::Native);
};

// One weight row in the form the dot reads (see above); storage is reused across rows.
struct UnpackedRow {
    AlignedVector<std::int8_t> q;            // [cols]
    AlignedVector<float> scale;              // [blocks]
    AlignedVector<float> min;                // [blocks], Q4_1 and Q4_K only
    AlignedVector<std::int16_t> sub_scales;  // [blocks x 16], Q6_K only: 8 lanes of each half's scale
};

// y[t · y_stride] = the row's product with token t of x, for every token of x. `row` holds
// x.cols elements of `type` (which must be supported). Scalar runs the portable code (the tests
// compare it with the vector code bit for bit).
void dot_row(DType type, const std::uint8_t* row, const QuantizedRows& x, float* y, std::int64_t y_stride,
             UnpackedRow& scratch, Code code = Code::Native);

// What computes the products here, for --verbose and benchmarks: "AMX-INT8 tiles above 4 tokens;
// rows: AVX2+VNNI", "rows: AVX2", or "rows: portable C++".
const char* describe_code();

// ---- AMX-INT8 tiles: many rows against many tokens ----

// Whether this CPU and build run AMX-INT8 tiles at all.
bool tiles_available();

// Whether dot_tiles serves `type` for this many tokens on this CPU and build: AMX-INT8 usable,
// more than four tokens (fewer read the packed rows faster), and a type other than Q6_K (whose
// 16-element sub-scales do not fit a tile one block deep).
bool use_tiles(DType type, std::int64_t tokens);

// 16 unpacked weight rows in AMX's B layout, block by block, with their scales and mins.
struct TileRows {
    UnpackedRow row;
    AlignedVector<std::int8_t> rows;  // [16][cols rounded up to two blocks], the unpacked rows
    AlignedVector<std::int8_t> q;  // [blocks rounded up to 2][8][16 rows][4]
    AlignedVector<float> scale;    // [blocks][16 rows]
    AlignedVector<float> min;      // [blocks][16 rows]
};

// y[t · y_stride + r] = dot_row's product of row r (at rows + r · row_stride) with token t, for
// r < count and every token of x, the same bits. Requires use_tiles(type, x.tokens).
void dot_tiles(DType type, const std::uint8_t* rows, std::int64_t row_stride, std::int64_t count,
               const QuantizedRows& x, float* y, std::int64_t y_stride, TileRows& scratch);

}  // namespace kindred::kernels::cpu::int8
