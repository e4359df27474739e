// kernels/cpu/amx_tiles.h — the tile configuration that LDTILECFG reads (palette 1), shared by the
// AMX kernels (bf16_gemm, int8_dot), and the transpose both pack B tiles with; internal to kernels/cpu. Each kernel keeps its configuration
// as a constexpr object in read-only memory, not on the stack: GCC 12 does not see that LDTILECFG
// reads all 64 bytes of its operand and dropped the stores of a local configuration as dead (the
// instruction then faulted on the zero row widths).
#pragma once

#include <cstdint>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace kindred::kernels::cpu::amx {

struct alignas(64) TileConfig {
    std::uint8_t palette = 1;
    std::uint8_t start_row = 0;
    std::uint8_t reserved[14] = {};
    std::uint16_t bytes_per_row[16] = {};
    std::uint8_t rows[16] = {};
};

// `config` with tile `tile` shaped rows x bytes_per_row.
constexpr TileConfig with_tile(TileConfig config, int tile, std::uint8_t rows, std::uint16_t bytes_per_row) {
    config.rows[tile] = rows;
    config.bytes_per_row[tile] = bytes_per_row;
    return config;
}

#ifdef __AVX512F__
// GCC 12 warns inside its own unpack intrinsics, which pass _mm512_undefined_epi32() as the
// unused merge source (GCC bug 105593): -Wmaybe-uninitialized where transpose_16x16 is inlined,
// -Wuninitialized where it is compiled on its own (bf16_gemm's round_columns).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// A 16 x 16 matrix of 32-bit words, one row per register, transposed in place (four rounds of
// shuffles: words within 128-bit lanes, then lanes).
inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // Now u[4i + c], lane L, holds column 4L + c of rows 4i..4i+3.
    __m512i u[16];
    for (int i = 0; i < 4; ++i) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; ++c) {
        const __m512i low0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
        const __m512i high0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xee);
        const __m512i low1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
        const __m512i high1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xee);
        r[c] = _mm512_shuffle_i32x4(low0, low1, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(low0, low1, 0xdd);
        r[8 + c] = _mm512_shuffle_i32x4(high0, high1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(high0, high1, 0xdd);
    }
}
#pragma GCC diagnostic pop
#endif

}  // namespace kindred::kernels::cpu::amx
