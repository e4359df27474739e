// kernels/cpu/bf16_gemm.h — products with bfloat16 operands and fp32 accumulation on AMX tiles
// (internal to kernels/cpu): the arithmetic of Precision::BF16 (kernels/matmul.h), QLoRA's
// compute dtype.
//
// C = A · B (+ C). A is activations, rounded to bf16 once per product into row-major rows whose
// length is padded with zeros to a multiple of 32. B is a frozen weight (or a slice of one)
// packed into the VNNI tile layout that AMX's TDPBF16PS reads: tile (kb, nb), 32 contraction rows
// x 16 output columns, holds in its row p the pairs (B[32·kb + 2p][16·nb + j],
// B[32·kb + 2p + 1][16·nb + j]) for j = 0..15, zero-padded past the matrix; tiles are stored
// nb-major, so the packing of a range of 16-column blocks is contiguous and threads can pack
// disjoint ranges concurrently.
//
// Only AMX (Sapphire Rapids and later; Linux grants tile data to a process that asks, once,
// through arch_prctl) is worth a path: AVX512-BF16's dot product runs at the rate of fp32 FMAs
// (measured: 101 GFLOP/s for a plain AVX512-BF16 kernel against OpenBLAS sgemm's 132 on one core
// of this machine's CPU, AMX 423), so on other CPUs kernels/matmul.h computes BF16 products in
// fp32. Rounding is to nearest even (core/half.h's fp32_to_bf16, which the conversion
// instruction matches except that it flushes denormal inputs, below 1.2e-38, to zero).
#pragma once

#include <cstdint>

namespace kindred::kernels::cpu::bf16 {

// Whether this build and CPU run AMX-BF16 (asked once per process). Every function below
// throws Error when it is false.
bool available();

constexpr std::int64_t block_k = 32;  // contraction rows per tile
constexpr std::int64_t block_n = 16;  // output columns per tile
constexpr std::int64_t block_m = 16;  // rows of A per tile

constexpr std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

// dst[r · ldd + c] = bf16(scale · src[r · lds + c]) for c < cols, 0 for cols <= c < round_up(cols, 32).
void round_rows(std::uint16_t* dst, std::int64_t ldd, const float* src, std::int64_t lds, std::int64_t rows,
                std::int64_t cols, float scale = 1.0f);

// The transpose, rounded: dst[c · ldd + r] = bf16(src[r · lds + c]) for r < rows, 0 for
// rows <= r < round_up(rows, 32), for every c < cols (an A operand whose rows are src's columns).
void round_columns(std::uint16_t* dst, std::int64_t ldd, const float* src, std::int64_t lds, std::int64_t rows,
                   std::int64_t cols);

// round_rows with the rows split over core/thread_pool.
void round_rows_parallel(std::uint16_t* dst, std::int64_t ldd, const float* src, std::int64_t lds, std::int64_t rows,
                         std::int64_t cols, float scale = 1.0f);

// Elements of a packed [k x n] operand.
constexpr std::int64_t packed_elements(std::int64_t k, std::int64_t n) {
    return round_up(k, block_k) * round_up(n, block_n);
}
// Where the packing of 16-column block nb starts (for packing column ranges separately).
constexpr std::int64_t packed_offset(std::int64_t k, std::int64_t nb) { return nb * round_up(k, block_k) * block_n; }

// Packs B = wᵀ for w [n x k] (row stride ldw): the forward product x · wᵀ with w a weight's rows.
void pack_transposed(std::uint16_t* packed, const float* w, std::int64_t ldw, std::int64_t n, std::int64_t k);
// Packs B = w for w [k x n] (row stride ldw).
void pack(std::uint16_t* packed, const float* w, std::int64_t ldw, std::int64_t k, std::int64_t n);

// A second product for gemm to sum into the same tiles: a2 [m x k] (rows of stride lda, as gemm's
// a) times packed B2 [k x n]. Its terms join each fp32 sum after the first product's, exactly as
// a second gemm call accumulating into c would add them, without c's second round trip through
// memory (a LoRA adapter's term beside its frozen weight's product).
struct SecondProduct {
    const std::uint16_t* a = nullptr;
    std::int64_t lda = 0;
    const std::uint16_t* packed = nullptr;
    std::int64_t k = 0;
};

// c[m x n] (row stride ldc) = a · B (+ then's a2 · B2), plus c when accumulate. a: m bf16 rows
// from round_rows with row stride lda, each readable up to column round_up(k, 32) (zeros past k,
// or finite values that B's zero padding multiplies); rows past m are never read. B: `packed`
// points at the first of its k-blocks in a packing of packed_k >= k rows (0: k), so that a
// product can take a run of 32-row blocks out of a taller packed matrix.
void gemm(float* c, std::int64_t ldc, const std::uint16_t* a, std::int64_t lda, const std::uint16_t* packed,
          std::int64_t m, std::int64_t n, std::int64_t k, bool accumulate, const SecondProduct* then = nullptr,
          std::int64_t packed_k = 0);

}  // namespace kindred::kernels::cpu::bf16
