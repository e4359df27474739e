// kernels/cpu/bf16_gemm.cpp — see bf16_gemm.h. C is computed in 32 x 32 blocks of four
// accumulator tiles (tmm0-3) from two A tiles (tmm4-5) and two B tiles (tmm6-7), walking C in
// chunks of 128 rows so that a chunk of A stays in L2 while every column block passes over it and
// a column block's B tiles stay in L1 while the chunk's row blocks pass under them. Whole blocks
// load and store their tiles in C itself; blocks on C's ragged edges go through a padded scratch.
#include "kernels/cpu/bf16_gemm.h"

#include <algorithm>
#include <cstring>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/scratch.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__linux__)
#include <immintrin.h>
#define KINDRED_AMX 1
#endif

namespace kindred::kernels::cpu::bf16 {
namespace {

void require_amx(const char* op) {
    if (!available()) fail("bf16 {}: this CPU or build has no AMX-BF16", op);
}

#ifdef KINDRED_AMX
constexpr std::int64_t tile_elements = block_k * block_n;  // bf16 values per packed tile

// Every tile 16 rows x 64 bytes: C tiles 16 x 16 fp32, A tiles 16 x 32 bf16, B tiles 16 pairs x 16.
constexpr amx::TileConfig all_tiles_16_by_64() {
    amx::TileConfig config;
    for (int t = 0; t < 8; ++t) config = amx::with_tile(config, t, 16, 64);
    return config;
}

constexpr amx::TileConfig tile_config = all_tiles_16_by_64();

void configure_tiles() { _tile_loadconfig(&tile_config); }

// Where the (up to) two 16-row tiles of A of a block start, with their row strides in bytes: A
// itself, or for A's last rows a zero-padded copy (gemm never reads past row m).
struct ATiles {
    const std::uint16_t* start[2];
    long stride[2];
};

// One product a block sums: A's tiles, B's first column block, its k-blocks and the elements from
// one column block of B to the next.
struct BlockOperands {
    ATiles a;
    const std::uint16_t* b;
    std::int64_t k_blocks;
    std::int64_t b_stride;
};

// MT x NT tiles of C (MT row tiles of A, NT column blocks of B), read from (when accumulate) and
// written to c with row stride ldc, summing the `count` products in turn.
template <int MT, int NT>
void amx_block(float* c, std::int64_t ldc, const BlockOperands* products, int count, bool accumulate) {
    const auto c_stride = static_cast<long>(ldc * 4);
    float* c1 = c + block_n;
    float* c2 = c + block_m * ldc;
    float* c3 = c2 + block_n;
    if (accumulate) {
        _tile_loadd(0, c, c_stride);
        if constexpr (NT > 1) _tile_loadd(1, c1, c_stride);
        if constexpr (MT > 1) _tile_loadd(2, c2, c_stride);
        if constexpr (MT > 1 && NT > 1) _tile_loadd(3, c3, c_stride);
    } else {
        _tile_zero(0);
        if constexpr (NT > 1) _tile_zero(1);
        if constexpr (MT > 1) _tile_zero(2);
        if constexpr (MT > 1 && NT > 1) _tile_zero(3);
    }
    for (int p = 0; p < count; ++p) {
        const ATiles& a = products[p].a;
        const std::uint16_t* b = products[p].b;
        const std::int64_t k_blocks = products[p].k_blocks;
        const std::uint16_t* b1 = b + products[p].b_stride;
        for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
            _tile_loadd(4, a.start[0] + kb * block_k, a.stride[0]);
            if constexpr (MT > 1) _tile_loadd(5, a.start[1] + kb * block_k, a.stride[1]);
            _tile_loadd(6, b + kb * tile_elements, 64);
            if constexpr (NT > 1) _tile_loadd(7, b1 + kb * tile_elements, 64);
            _tile_dpbf16ps(0, 4, 6);
            if constexpr (NT > 1) _tile_dpbf16ps(1, 4, 7);
            if constexpr (MT > 1) _tile_dpbf16ps(2, 5, 6);
            if constexpr (MT > 1 && NT > 1) _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, c, c_stride);
    if constexpr (NT > 1) _tile_stored(1, c1, c_stride);
    if constexpr (MT > 1) _tile_stored(2, c2, c_stride);
    if constexpr (MT > 1 && NT > 1) _tile_stored(3, c3, c_stride);
}

template <int MT, int NT>
void edge_block(float* c, std::int64_t ldc, const BlockOperands* products, int count, bool accumulate,
                std::int64_t rows, std::int64_t cols) {
    constexpr std::int64_t width = 2 * block_n;
    alignas(64) float scratch[2 * block_m * width] = {};
    if (accumulate)
        for (std::int64_t i = 0; i < rows; ++i) std::memcpy(scratch + i * width, c + i * ldc, cols * sizeof(float));
    amx_block<MT, NT>(scratch, width, products, count, accumulate);
    for (std::int64_t i = 0; i < rows; ++i) std::memcpy(c + i * ldc, scratch + i * width, cols * sizeof(float));
}

template <int MT, int NT>
void any_block(float* c, std::int64_t ldc, const BlockOperands* products, int count, bool accumulate,
               std::int64_t rows, std::int64_t cols) {
    if (rows == MT * block_m && cols == NT * block_n)
        amx_block<MT, NT>(c, ldc, products, count, accumulate);
    else
        edge_block<MT, NT>(c, ldc, products, count, accumulate, rows, cols);
}

// Which product's A a tail copy belongs to (thread_scratch's kinds).
enum class Tail { First, Second };

// One product's A as gemm walks it: rows past its last whole 16-row tile are copied, with zero
// rows below them, into a tile's worth of the calling thread's scratch (gemm never reads past
// row m).
template <Tail Which>
class ARows {
public:
    ARows(const std::uint16_t* a, std::int64_t lda, std::int64_t m, std::int64_t k)
        : a_(a), lda_(lda), padded_k_(round_up(k, block_k)), whole_rows_(m / block_m * block_m),
          tail_(thread_scratch<std::uint16_t, Which>(block_m * padded_k_)) {
        if (whole_rows_ == m) return;
        std::memset(tail_, 0, static_cast<std::size_t>(block_m * padded_k_) * sizeof(std::uint16_t));
        for (std::int64_t r = whole_rows_; r < m; ++r)
            std::memcpy(tail_ + (r - whole_rows_) * padded_k_, a + r * lda, padded_k_ * sizeof(std::uint16_t));
    }
    // Tile t (0 or 1) of `tiles` for the 16 rows from `row`.
    void tile(std::int64_t row, int t, ATiles& tiles) const {
        const bool in_place = row < whole_rows_;
        tiles.start[t] = in_place ? a_ + row * lda_ : tail_;
        tiles.stride[t] = static_cast<long>((in_place ? lda_ : padded_k_) * 2);
    }

private:
    const std::uint16_t* a_;
    std::int64_t lda_, padded_k_, whole_rows_;
    std::uint16_t* tail_;
};

// Rows of C per chunk: 128 rows of A (K = 1536: 384 KiB of bf16) stay in L2 across column blocks.
constexpr std::int64_t chunk_rows = 128;

// The first `count` (0..16) floats at p, zeros after.
inline __m512 load_first(const float* p, std::int64_t count) {
    if (count >= 16) return _mm512_loadu_ps(p);
    if (count <= 0) return _mm512_setzero_ps();
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), p);
}
#endif

}  // namespace

bool available() {
#ifdef KINDRED_AMX
    return cpu_isa().amx_bf16;  // which includes the OS's permission
#else
    return false;
#endif
}

void round_rows(std::uint16_t* dst, std::int64_t ldd, const float* src, std::int64_t lds, std::int64_t rows,
                std::int64_t cols, float scale) {
    require_amx("round_rows");
#ifdef KINDRED_AMX
    const std::int64_t padded = round_up(cols, block_k);
    const __m512 factor = _mm512_set1_ps(scale);
    for (std::int64_t r = 0; r < rows; ++r) {
        std::uint16_t* out = dst + r * ldd;
        const float* in = src + r * lds;
        for (std::int64_t c = 0; c < padded; c += 32) {
            const __m512 low = _mm512_mul_ps(factor, load_first(in + c, cols - c));
            const __m512 high = _mm512_mul_ps(factor, load_first(in + c + 16, cols - c - 16));
            _mm512_storeu_si512(out + c, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(high, low)));
        }
    }
#endif
}

void round_columns(std::uint16_t* dst, std::int64_t ldd, const float* src, std::int64_t lds, std::int64_t rows,
                   std::int64_t cols) {
    require_amx("round_columns");
#ifdef KINDRED_AMX
    // 16 x 16 blocks of src: transposed, word row c holds column c0 + c of rows r0..r0 + 15.
    const std::int64_t padded = round_up(rows, block_k);
    for (std::int64_t c0 = 0; c0 < cols; c0 += 16) {
        const std::int64_t width = std::min<std::int64_t>(16, cols - c0);
        for (std::int64_t r0 = 0; r0 < padded; r0 += 16) {
            __m512i words[16];
            for (std::int64_t r = 0; r < 16; ++r)
                words[r] = r0 + r < rows ? _mm512_castps_si512(load_first(src + (r0 + r) * lds + c0, width))
                                         : _mm512_setzero_si512();
            amx::transpose_16x16(words);
            for (std::int64_t c = 0; c < width; ++c)
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (c0 + c) * ldd + r0),
                                    reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_castsi512_ps(words[c]))));
        }
    }
#endif
}

void round_rows_parallel(std::uint16_t* dst, std::int64_t ldd, const float* src, std::int64_t lds, std::int64_t rows,
                         std::int64_t cols, float scale) {
    thread_pool().parallel_for(rows, 16, [&](std::int64_t b, std::int64_t e) {
        round_rows(dst + b * ldd, ldd, src + b * lds, lds, e - b, cols, scale);
    });
}

void pack_transposed(std::uint16_t* packed, const float* w, std::int64_t ldw, std::int64_t n, std::int64_t k) {
    require_amx("pack_transposed");
#ifdef KINDRED_AMX
    // Sixteen rows of w (columns of B) at a time: each row's 32 values of a tile become 16 pair
    // words; transposed, word row p is tile row p.
    const std::int64_t k_blocks = round_up(k, block_k) / block_k;
    for (std::int64_t j0 = 0; j0 < n; j0 += block_n) {
        std::uint16_t* out = packed + packed_offset(k, j0 / block_n);
        for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
            __m512i words[16];
            const std::int64_t k0 = kb * block_k;
            for (std::int64_t j = 0; j < block_n; ++j) {
                if (j0 + j >= n) {
                    words[j] = _mm512_setzero_si512();
                    continue;
                }
                const float* row = w + (j0 + j) * ldw + k0;
                words[j] = reinterpret_cast<__m512i>(
                    _mm512_cvtne2ps_pbh(load_first(row + 16, k - k0 - 16), load_first(row, k - k0)));
            }
            amx::transpose_16x16(words);
            for (int p = 0; p < 16; ++p) _mm512_storeu_si512(out + kb * tile_elements + p * 2 * block_n, words[p]);
        }
    }
#endif
}

void pack(std::uint16_t* packed, const float* w, std::int64_t ldw, std::int64_t k, std::int64_t n) {
    require_amx("pack");
#ifdef KINDRED_AMX
    // Rows 2p and 2p + 1 of w interleave into row p of a tile.
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    // Row pairs outer: w is read row after row (a column-block-outer walk strides through every
    // row once per block, one cache miss per 64 bytes), the stores go to one stream per block.
    const std::int64_t padded_k = round_up(k, block_k);
    for (std::int64_t kk = 0; kk < padded_k; kk += 2) {
        const std::int64_t offset = kk / block_k * tile_elements + kk % block_k / 2 * (2 * block_n);
        for (std::int64_t j = 0; j < n; j += block_n) {
            const __m512 even = kk < k ? load_first(w + kk * ldw + j, n - j) : _mm512_setzero_ps();
            const __m512 odd = kk + 1 < k ? load_first(w + (kk + 1) * ldw + j, n - j) : _mm512_setzero_ps();
            const auto both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even));
            _mm512_storeu_si512(packed + packed_offset(k, j / block_n) + offset,
                                _mm512_permutexvar_epi16(interleave, both));
        }
    }
#endif
}

void gemm(float* c, std::int64_t ldc, const std::uint16_t* a, std::int64_t lda, const std::uint16_t* packed,
          std::int64_t m, std::int64_t n, std::int64_t k, bool accumulate, const SecondProduct* then,
          std::int64_t packed_k) {
    require_amx("gemm");
    if (packed_k != 0 && packed_k < k) fail("bf16 gemm: B packed for {} rows cannot give {}", packed_k, k);
    if (m <= 0 || n <= 0) return;
#ifdef KINDRED_AMX
    const std::int64_t n_blocks = round_up(n, block_n) / block_n;
    const ARows<Tail::First> first_rows(a, lda, m, k);
    const std::int64_t k_blocks = round_up(k, block_k) / block_k;
    const std::int64_t b_stride = packed_offset(packed_k != 0 ? packed_k : k, 1);
    const bool second = then != nullptr && then->k > 0;
    const ARows<Tail::Second> second_rows(second ? then->a : a, second ? then->lda : lda, second ? m : 0, second ? then->k : 0);
    const std::int64_t second_k_blocks = second ? round_up(then->k, block_k) / block_k : 0;
    configure_tiles();
    for (std::int64_t i0 = 0; i0 < m; i0 += chunk_rows) {
        const std::int64_t i1 = std::min(m, i0 + chunk_rows);
        for (std::int64_t nb = 0; nb < n_blocks; nb += 2) {
            const std::int64_t cols = std::min(2 * block_n, n - nb * block_n);
            for (std::int64_t i = i0; i < i1; i += 2 * block_m) {
                const std::int64_t rows = std::min(2 * block_m, i1 - i);
                float* ci = c + i * ldc + nb * block_n;
                const bool m_pair = rows > block_m, n_pair = cols > block_n;
                BlockOperands products[2] = {{{}, packed + nb * b_stride, k_blocks, b_stride}, {}};
                first_rows.tile(i, 0, products[0].a);
                if (m_pair) first_rows.tile(i + block_m, 1, products[0].a);
                if (second) {
                    products[1] = {{}, then->packed + packed_offset(then->k, nb), second_k_blocks,
                                   packed_offset(then->k, 1)};
                    second_rows.tile(i, 0, products[1].a);
                    if (m_pair) second_rows.tile(i + block_m, 1, products[1].a);
                }
                const int count = second ? 2 : 1;
                if (m_pair && n_pair)
                    any_block<2, 2>(ci, ldc, products, count, accumulate, rows, cols);
                else if (m_pair)
                    any_block<2, 1>(ci, ldc, products, count, accumulate, rows, cols);
                else if (n_pair)
                    any_block<1, 2>(ci, ldc, products, count, accumulate, rows, cols);
                else
                    any_block<1, 1>(ci, ldc, products, count, accumulate, rows, cols);
            }
        }
    }
    _tile_release();
#endif
}

}  // namespace kindred::kernels::cpu::bf16
