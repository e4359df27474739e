// kernels/cpu/int8_dot.cpp — the 8-bit-activation dot products (see int8_dot.h).
#include "kernels/cpu/int8_dot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/ggml_blocks.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels::cpu::int8 {
namespace {

using namespace ggml_blocks;

// ---- weight rows to the dot's form ----

// Q4_0, Q4_1, Q5_0 and MXFP4 pack byte j of a block as element j (low nibble) and j + 16 (high).
template <typename Value>
void unpack_nibbles(const std::uint8_t* qs, std::int8_t* q, Value value) {
    for (int j = 0; j < kQK / 2; ++j) {
        q[j] = value(qs[j] & 0xF, j);
        q[j + kQK / 2] = value(qs[j] >> 4, j + kQK / 2);
    }
}

void unpack_scalar(DType type, const std::uint8_t* src, std::int64_t blocks, UnpackedRow& w) {
    std::int8_t* q = w.q.data();
    float* scale = w.scale.data();
    float* min = w.min.data();
    switch (type) {
        case DType::Q4_0:
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ40Bytes, q += kQK) {
                scale[b] = load_half(src);
                unpack_nibbles(src + 2, q, [](int n, int) { return static_cast<std::int8_t>(n - 8); });
            }
            break;
        case DType::Q4_1:
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ41Bytes, q += kQK) {
                scale[b] = load_half(src);
                min[b] = load_half(src + 2);
                unpack_nibbles(src + 4, q, [](int n, int) { return static_cast<std::int8_t>(n); });
            }
            break;
        case DType::Q5_0:
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ50Bytes, q += kQK) {
                scale[b] = load_half(src);
                std::uint32_t high_bits;
                std::memcpy(&high_bits, src + 2, sizeof high_bits);
                unpack_nibbles(src + 6, q, [&](int n, int element) {
                    return static_cast<std::int8_t>((n | static_cast<int>(((high_bits >> element) & 1u) << 4)) - 16);
                });
            }
            break;
        case DType::Q8_0:
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ80Bytes, q += kQK) {
                scale[b] = load_half(src);
                std::memcpy(q, src + 2, kQK);
            }
            break;
        case DType::MXFP4:
            for (std::int64_t b = 0; b < blocks; ++b, src += kMxfp4Bytes, q += kQK) {
                scale[b] = e8m0_to_fp32_half(src[0]);
                unpack_nibbles(src + 1, q, [](int n, int) { return kMxfp4Values[static_cast<std::size_t>(n)]; });
            }
            break;
        case DType::Q4_K:
            // Per 64 elements: 32 bytes whose low nibbles are one 32-block and high nibbles the next,
            // each block with its six-bit scale and min: value = d·sc·q − dmin·m.
            for (std::int64_t b = 0; b < blocks; b += kQK_K / kQK, src += kQ4KBytes) {
                const float d = load_half(src), dmin = load_half(src + 2);
                for (int j = 0; j < kQK_K / kQK; ++j, q += kQK) {
                    std::uint8_t sc, mn;
                    q4k_scale_min(j, src + 4, sc, mn);
                    scale[b + j] = d * sc;
                    min[b + j] = -(dmin * mn);
                    const std::uint8_t* qs = src + 16 + (j / 2) * 32;
                    for (int l = 0; l < kQK; ++l)
                        q[l] = static_cast<std::int8_t>(j % 2 == 0 ? qs[l] & 0xF : qs[l] >> 4);
                }
            }
            break;
        case DType::Q6_K: {
            // Per 128 elements: four 32-blocks; block k takes nibble k / 2 of ql[32 (k % 2) + l] and
            // bits 2k..2k+1 of qh[l]; value = d · sc[2k + l / 16] · (q − 32).
            std::int16_t* sub = w.sub_scales.data();
            for (std::int64_t b = 0; b < blocks; b += kQK_K / kQK, src += kQ6KBytes) {
                const float d = load_half(src + 208);
                for (int half = 0; half < 2; ++half) {
                    const std::uint8_t* ql = src + 64 * half;
                    const std::uint8_t* qh = src + 128 + 32 * half;
                    const auto* sc = reinterpret_cast<const std::int8_t*>(src + 192 + 8 * half);
                    for (int k = 0; k < 4; ++k, q += kQK, sub += 16) {
                        scale[b + 4 * half + k] = d;
                        for (int l = 0; l < kQK; ++l) {
                            const int low = (ql[32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
                            const int high = (qh[l] >> (2 * k)) & 3;
                            q[l] = static_cast<std::int8_t>((low | (high << 4)) - 32);
                        }
                        for (int i = 0; i < 16; ++i) sub[i] = sc[2 * k + i / 8];
                    }
                }
            }
            break;
        }
        default:
            break;
    }
}

#ifdef KINDRED_AVX2

// 16 bytes of nibble pairs -> the 32 nibbles in element order (the low nibbles, then the high):
// both halves of the register load the 16 bytes, the upper half shifted right by 4.
inline __m256i nibbles(const std::uint8_t* qs) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

// The 32 nibbles through a 16-entry table (in both halves of `table`).
inline __m256i nibbles_through_table(const std::uint8_t* qs, __m256i table) {
    return _mm256_shuffle_epi8(table, nibbles(qs));
}

// A 16-byte table in both halves of a register, as nibbles_through_table reads it.
inline __m256i table_of(const std::int8_t* values) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(values)));
}

constexpr std::array<std::int8_t, 16> kMinusEight = {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};

inline void store32(std::int8_t* q, __m256i values) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), values); }

// The AVX2 unpackers of the types the shipped models use; false for the rest (scalar).
bool unpack_avx2(DType type, const std::uint8_t* src, std::int64_t blocks, UnpackedRow& w) {
    std::int8_t* q = w.q.data();
    float* scale = w.scale.data();
    switch (type) {
        case DType::Q4_0: {
            const __m256i minus_eight = table_of(kMinusEight.data());
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ40Bytes, q += kQK) {
                scale[b] = load_half(src);
                store32(q, nibbles_through_table(src + 2, minus_eight));
            }
            return true;
        }
        case DType::Q4_1:
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ41Bytes, q += kQK) {
                scale[b] = load_half(src);
                w.min[static_cast<std::size_t>(b)] = load_half(src + 2);
                store32(q, nibbles(src + 4));
            }
            return true;
        case DType::MXFP4: {
            const __m256i values = table_of(kMxfp4Values.data());
            for (std::int64_t b = 0; b < blocks; ++b, src += kMxfp4Bytes, q += kQK) {
                scale[b] = e8m0_to_fp32_half(src[0]);
                store32(q, nibbles_through_table(src + 1, values));
            }
            return true;
        }
        case DType::Q4_K: {
            const __m256i low_mask = _mm256_set1_epi8(0x0F);
            float* min = w.min.data();
            for (std::int64_t b = 0; b < blocks; b += kQK_K / kQK, src += kQ4KBytes) {
                const float d = load_half(src), dmin = load_half(src + 2);
                for (int j = 0; j < kQK_K / kQK; ++j) {
                    std::uint8_t sc, mn;
                    q4k_scale_min(j, src + 4, sc, mn);
                    scale[b + j] = d * sc;
                    min[b + j] = -(dmin * mn);
                }
                for (int j = 0; j < kQK_K / 64; ++j, q += 64) {
                    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 16 + 32 * j));
                    store32(q, _mm256_and_si256(bytes, low_mask));
                    store32(q + kQK, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_mask));
                }
            }
            return true;
        }
        case DType::Q6_K: {
            const __m256i low_mask = _mm256_set1_epi8(0x0F), two_bits = _mm256_set1_epi8(0x03);
            const __m256i bias = _mm256_set1_epi8(32);
            std::int16_t* sub = w.sub_scales.data();
            for (std::int64_t b = 0; b < blocks; b += kQK_K / kQK, src += kQ6KBytes) {
                const float d = load_half(src + 208);
                for (int half = 0; half < 2; ++half) {
                    const std::uint8_t* ql = src + 64 * half;
                    const auto* sc = reinterpret_cast<const std::int8_t*>(src + 192 + 8 * half);
                    const __m256i la = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
                    const __m256i lb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
                    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 128 + 32 * half));
                    const __m256i lows[4] = {_mm256_and_si256(la, low_mask), _mm256_and_si256(lb, low_mask),
                                             _mm256_and_si256(_mm256_srli_epi16(la, 4), low_mask),
                                             _mm256_and_si256(_mm256_srli_epi16(lb, 4), low_mask)};
                    for (int k = 0; k < 4; ++k, q += kQK, sub += 16) {
                        scale[b + 4 * half + k] = d;
                        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(h, 2 * k), two_bits);
                        store32(q, _mm256_sub_epi8(_mm256_or_si256(lows[k], _mm256_slli_epi16(high, 4)), bias));
                        const __m128i first = _mm_set1_epi16(sc[2 * k]), second = _mm_set1_epi16(sc[2 * k + 1]);
                        _mm256_storeu_si256(reinterpret_cast<__m256i*>(sub), _mm256_set_m128i(second, first));
                    }
                }
            }
            return true;
        }
        case DType::Q8_0:
            for (std::int64_t b = 0; b < blocks; ++b, src += kQ80Bytes, q += kQK) {
                scale[b] = load_half(src);
                std::memcpy(q, src + 2, kQK);
            }
            return true;
        default:
            return false;
    }
}

#endif

// ---- activations to 8-bit blocks ----

struct BlockRange {
    float amax;
    bool finite;
};

BlockRange block_range_scalar(const float* x) {
    BlockRange range{0.0f, true};
    for (std::int64_t i = 0; i < block; ++i) {
        range.finite = range.finite && std::isfinite(x[i]);
        range.amax = std::max(range.amax, std::fabs(x[i]));
    }
    return range;
}

// q[i] = round(x[i] · inverse), half away from zero (as ggml's reference and gguf-py); returns Σq.
std::int32_t round_block_scalar(const float* x, float inverse, std::int8_t* q) {
    std::int32_t sum = 0;
    for (std::int64_t i = 0; i < block; ++i) {
        q[i] = static_cast<std::int8_t>(std::round(x[i] * inverse));
        sum += q[i];
    }
    return sum;
}

#ifdef KINDRED_AVX2

BlockRange block_range_native(const float* x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_setzero_ps();
    int finite = 0xFF;
    for (int i = 0; i < block; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v));
        // v − v is 0 for finite v, NaN for inf and NaN.
        finite &= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_EQ_OQ));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return {_mm_cvtss_f32(m), finite == 0xFF};
}

// round_block_scalar's bits: truncate, then step away from zero when the dropped fraction (exact,
// by Sterbenz) is at least one half.
std::int32_t round_block_native(const float* x, float inverse, std::int8_t* q) {
    const __m256 scale = _mm256_set1_ps(inverse), sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256i ints[4];
    for (int k = 0; k < 4; ++k) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), scale);
        const __m256 truncated = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m256 away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(v, truncated)), half, _CMP_GE_OQ);
        const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), one);  // ±1 with v's sign
        ints[k] = _mm256_cvttps_epi32(_mm256_add_ps(truncated, _mm256_and_ps(away, step)));
    }
    const __m256i words = _mm256_packs_epi16(_mm256_packs_epi32(ints[0], ints[1]), _mm256_packs_epi32(ints[2], ints[3]));
    // The packs interleave 128-bit halves; put the four 32-bit groups back in element order.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                        _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    __m256i total = _mm256_add_epi32(_mm256_add_epi32(ints[0], ints[1]), _mm256_add_epi32(ints[2], ints[3]));
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
    return _mm_cvtsi128_si32(sum);
}

#else

BlockRange block_range_native(const float* x) { return block_range_scalar(x); }
std::int32_t round_block_native(const float* x, float inverse, std::int8_t* q) { return round_block_scalar(x, inverse, q); }

#endif

// ---- the dot ----

constexpr int chains = 8;  // the chains of int8_dot.h's order

bool has_mins(DType type) { return type == DType::Q4_1 || type == DType::Q4_K; }

// The chains summed as cpu::hsum sums a register's eight lanes: (l, l + 4), then (l, l + 2), then (0, 1).
float sum_chains(const float* chain) {
    const float s0 = chain[0] + chain[4], s1 = chain[1] + chain[5], s2 = chain[2] + chain[6], s3 = chain[3] + chain[7];
    return (s0 + s2) + (s1 + s3);
}

// What the token loop reads of an unpacked row; sub_scales / min are null when the type has none.
struct RowView {
    const std::int8_t* q;
    const float* scale;
    const float* min;
    const std::int16_t* sub_scales;
};

// Token t's product with the row, for every token of x: int8_dot.h's order, spelled out.
void dot_tokens_scalar(const RowView& w, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    const std::int64_t blocks = x.blocks;
    for (std::int64_t t = 0; t < x.tokens; ++t) {
        const std::int8_t* xq = x.q.data() + t * x.cols;
        const float* xd = x.scale.data() + t * blocks;
        const float* xs = x.scaled_sum.data() + t * blocks;
        float chain[chains] = {};
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::int8_t* wb = w.q + b * block;
            const std::int8_t* xb = xq + b * block;
            std::int32_t total = 0;
            for (int i = 0; i < block; ++i) {
                const std::int32_t product = wb[i] * xb[i];
                total += w.sub_scales != nullptr ? product * w.sub_scales[b * 16 + 2 * (i / 4)] : product;
            }
            float& c = chain[b % chains];
            c = std::fma(w.scale[b] * xd[b], static_cast<float>(total), c);
            if (w.min != nullptr) c = std::fma(w.min[b], xs[b], c);
        }
        y[t * y_stride] = sum_chains(chain);
    }
}

void unpack_row(DType type, const std::uint8_t* row, std::int64_t blocks, UnpackedRow& w, Code code) {
    w.q.resize(static_cast<std::size_t>(blocks * block));
    w.scale.resize(static_cast<std::size_t>(blocks));
    if (has_mins(type)) w.min.resize(static_cast<std::size_t>(blocks));
    if (type == DType::Q6_K) w.sub_scales.resize(static_cast<std::size_t>(blocks * 16));
#ifdef KINDRED_AVX2
    if (code == Code::Native && unpack_avx2(type, row, blocks, w)) return;
#else
    (void)code;
#endif
    unpack_scalar(type, row, blocks, w);
}

#ifdef KINDRED_AVX2

// A weight block as the vector code reads it: its 32 values (signed, or the nibbles 0..15 of the
// types with mins), its scale, its min (Q4_1, Q4_K) and its lanes' weights (Q6_K's sub-block
// scales as int16, otherwise ones).
struct Block {
    __m256i q;
    float scale;
    float min;
    __m256i weights;
};

// Eight exact partial sums of a block's products, elements 4l..4l+3 in lane l: unsigned bytes
// times signed bytes. maddubs's adjacent pairs stay within int16 (|u| <= 128, |s| <= 127:
// 2·128·127 < 32768), so VNNI's dpbusd gives the same integers in one instruction.
template <bool SubScales>
inline __m256i lane_sums(__m256i unsigned_bytes, __m256i signed_bytes, __m256i weights) {
    if constexpr (!SubScales) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned_bytes, signed_bytes);
#elif defined(__AVXVNNI__)
        return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), unsigned_bytes, signed_bytes);
#endif
    }
    return _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned_bytes, signed_bytes), weights);
}

// Block b's lane sums for tokens first..first + Tokens − 1 (zeros, with a zero scale and min, when
// the block is past the row's end), its scale and min.
template <bool Mins, bool SubScales, int Tokens, typename BlockAt>
inline void block_lanes(BlockAt block_at, const QuantizedRows& x, std::int64_t first, std::int64_t b, bool present,
                        float& scale, float& min, __m256i lanes[Tokens]) {
    if (!present) {
        scale = min = 0.0f;
        for (int k = 0; k < Tokens; ++k) lanes[k] = _mm256_setzero_si256();
        return;
    }
    const Block w = block_at(b);
    scale = w.scale;
    min = w.min;
    // The types with mins have nibbles 0..15, taken as they are; the others' signed values go in
    // as |w| with x carrying w's sign (the same integers either way).
    const __m256i magnitude = Mins ? w.q : _mm256_abs_epi8(w.q);
    for (int k = 0; k < Tokens; ++k) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + (first + k) * x.cols + b * block));
        lanes[k] = lane_sums<SubScales>(magnitude, Mins ? xv : _mm256_sign_epi8(xv, w.q), w.weights);
    }
}

// Blocks g..g + n − 1 (n <= 8; Tail when n may be below 8) of tokens first..first + Tokens − 1
// into their chains acc[k]: each weight block is read once for all the tokens. The blocks' totals
// come from their lane sums by integer additions (any order gives the same values): hadd pairs
// lanes within 128-bit halves, which are added last. Lanes past n are zero totals with zero
// scales, which leave their chains as they are (a chain is never −0).
template <bool Mins, bool SubScales, int Tokens, bool Tail, typename BlockAt>
inline void chain_group(BlockAt block_at, const QuantizedRows& x, std::int64_t first, std::int64_t g, int n,
                        __m256 acc[Tokens]) {
    const std::int64_t blocks = x.blocks;
    float w_scale[chains], w_min[chains];
    __m256i quads[2][Tokens];  // blocks 0-3 and 4-7: each 128-bit half holds four blocks' half-totals
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
        __m256i pairs[2][Tokens];
#pragma GCC unroll 2
        for (int p = 0; p < 2; ++p) {
            const int j = 4 * half + 2 * p;
            __m256i even[Tokens], odd[Tokens];
            block_lanes<Mins, SubScales, Tokens>(block_at, x, first, g + j, !Tail || j < n, w_scale[j], w_min[j], even);
            block_lanes<Mins, SubScales, Tokens>(block_at, x, first, g + j + 1, !Tail || j + 1 < n, w_scale[j + 1],
                                                 w_min[j + 1], odd);
            for (int k = 0; k < Tokens; ++k) pairs[p][k] = _mm256_hadd_epi32(even[k], odd[k]);
        }
        for (int k = 0; k < Tokens; ++k) quads[half][k] = _mm256_hadd_epi32(pairs[0][k], pairs[1][k]);
    }
    const __m256 scales = _mm256_setr_ps(w_scale[0], w_scale[1], w_scale[2], w_scale[3], w_scale[4], w_scale[5],
                                         w_scale[6], w_scale[7]);
    const __m256 mins = _mm256_setr_ps(w_min[0], w_min[1], w_min[2], w_min[3], w_min[4], w_min[5], w_min[6], w_min[7]);
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int k = 0; k < Tokens; ++k) {
        const __m256i totals = _mm256_add_epi32(_mm256_permute2x128_si256(quads[0][k], quads[1][k], 0x20),
                                                _mm256_permute2x128_si256(quads[0][k], quads[1][k], 0x31));
        const float* xd = x.scale.data() + (first + k) * blocks + g;
        const __m256 d = Tail ? _mm256_maskload_ps(xd, valid) : _mm256_loadu_ps(xd);
        acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(scales, d), _mm256_cvtepi32_ps(totals), acc[k]);
        if constexpr (Mins) {
            const float* xs = x.scaled_sum.data() + (first + k) * blocks + g;
            acc[k] = _mm256_fmadd_ps(mins, Tail ? _mm256_maskload_ps(xs, valid) : _mm256_loadu_ps(xs), acc[k]);
        }
    }
}

// Tokens first..first + Tokens − 1 of x against the row whose blocks `block_at(b)` gives; the
// register's lanes are the eight chains.
template <bool Mins, bool SubScales, int Tokens, typename BlockAt>
void dot_token_group_avx2(BlockAt block_at, const QuantizedRows& x, std::int64_t first, float* y, std::int64_t y_stride) {
    const std::int64_t blocks = x.blocks;
    __m256 acc[Tokens];
    for (int k = 0; k < Tokens; ++k) acc[k] = _mm256_setzero_ps();
    std::int64_t g = 0;
    for (; g + chains <= blocks; g += chains) chain_group<Mins, SubScales, Tokens, false>(block_at, x, first, g, chains, acc);
    if (g < blocks) chain_group<Mins, SubScales, Tokens, true>(block_at, x, first, g, static_cast<int>(blocks - g), acc);
    for (int k = 0; k < Tokens; ++k) y[(first + k) * y_stride] = hsum(acc[k]);
}

template <bool SubScales, bool Mins>
void dot_tokens_avx2(const RowView& w, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    const __m256i ones = _mm256_set1_epi16(1);
    const auto block_at = [&](std::int64_t b) {
        return Block{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + b * block)), w.scale[b],
                     Mins ? w.min[b] : 0.0f,
                     SubScales ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.sub_scales + b * 16)) : ones};
    };
    std::int64_t t = 0;
    for (; t + 4 <= x.tokens; t += 4) dot_token_group_avx2<Mins, SubScales, 4>(block_at, x, t, y, y_stride);
    for (; t < x.tokens; ++t) dot_token_group_avx2<Mins, SubScales, 1>(block_at, x, t, y, y_stride);
}

// Up to four tokens against a packed row, each block unpacked in registers as unpack_avx2 unpacks
// it to memory (the same values, scales and mins, so the same bits): a decode step reads each
// weight block once either way, and this way never writes it back out.
template <bool Mins, typename BlockAt>
void dot_few_tokens_avx2(BlockAt block_at, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    switch (x.tokens) {
        case 1: dot_token_group_avx2<Mins, false, 1>(block_at, x, 0, y, y_stride); break;
        case 2: dot_token_group_avx2<Mins, false, 2>(block_at, x, 0, y, y_stride); break;
        case 3: dot_token_group_avx2<Mins, false, 3>(block_at, x, 0, y, y_stride); break;
        default: dot_token_group_avx2<Mins, false, 4>(block_at, x, 0, y, y_stride); break;
    }
}

// False for the types without this form, whose rows are unpacked first: Q5_0, and the K-quants,
// whose scales are spread over a 256-block (bench/int8_dot: decoding them block by block measured
// 40-70% slower than unpacking the row at once, a super-block's scales at its first block no
// faster; this form is 17-32% faster for the rest).
bool dot_packed_avx2(DType type, const std::uint8_t* src, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    const __m256i ones = _mm256_set1_epi16(1);
    switch (type) {
        case DType::Q4_0: {
            const __m256i minus_eight = table_of(kMinusEight.data());
            dot_few_tokens_avx2<false>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kQ40Bytes;
                return Block{nibbles_through_table(p + 2, minus_eight), load_half(p), 0.0f, ones};
            }, x, y, y_stride);
            return true;
        }
        case DType::Q4_1:
            dot_few_tokens_avx2<true>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kQ41Bytes;
                return Block{nibbles(p + 4), load_half(p), load_half(p + 2), ones};
            }, x, y, y_stride);
            return true;
        case DType::Q8_0:
            dot_few_tokens_avx2<false>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kQ80Bytes;
                return Block{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2)), load_half(p), 0.0f, ones};
            }, x, y, y_stride);
            return true;
        case DType::MXFP4: {
            const __m256i values = table_of(kMxfp4Values.data());
            dot_few_tokens_avx2<false>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kMxfp4Bytes;
                return Block{nibbles_through_table(p + 1, values), e8m0_to_fp32_half(p[0]), 0.0f, ones};
            }, x, y, y_stride);
            return true;
        }
        default:
            return false;
    }
}

#endif

// ---- AMX-INT8 tiles ----

#if defined(__AMX_TILE__) && defined(__AMX_INT8__) && defined(__AVX512F__) && defined(__linux__)
#define KINDRED_AMX_INT8 1

constexpr std::int64_t b_tile_bytes = block * tile;  // one block of 16 rows: 8 rows of 16 x 4 bytes

// Tiles 0 and 3: C, 16 tokens x 16 int32; 1 and 4: A, 16 tokens x one block; 2 and 5: B, one
// block of 16 weight rows as 8 rows of 16 x 4 bytes.
constexpr amx::TileConfig product_tiles(amx::TileConfig config, int c) {
    return amx::with_tile(amx::with_tile(amx::with_tile(config, c, tile, 64), c + 1, tile, block), c + 2, block / 4, 64);
}
constexpr amx::TileConfig tile_config = product_tiles(product_tiles(amx::TileConfig{}, 0), 3);

// GCC 12 warns inside its own AVX-512 intrinsics, which pass _mm512_undefined_*() as the unused
// merge source (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// Rows first..first + count − 1 (count <= 16) into s's B tiles: the rows are unpacked, then each
// pair of blocks of the 16 rows (16 x 16 words of 4 bytes) is transposed, which puts word k of
// every row side by side, as a B tile's row k wants them. Rows past count are zeros.
void interleave_rows(DType type, const std::uint8_t* rows, std::int64_t row_stride, std::int64_t count,
                     std::int64_t blocks, TileRows& s) {
    const std::int64_t cols = blocks * block, padded_cols = (blocks + 1) / 2 * 2 * block;
    s.rows.resize(static_cast<std::size_t>(tile * padded_cols));
    s.q.resize(static_cast<std::size_t>((blocks + 1) / 2 * 2 * b_tile_bytes));
    s.scale.assign(static_cast<std::size_t>(blocks * tile), 0.0f);
    s.min.assign(static_cast<std::size_t>(blocks * tile), 0.0f);
    if (count < tile || padded_cols > cols) std::fill(s.rows.begin(), s.rows.end(), std::int8_t{0});
    const bool mins = has_mins(type);
    for (std::int64_t n = 0; n < count; ++n) {
        unpack_row(type, rows + n * row_stride, blocks, s.row, Code::Native);
        std::memcpy(s.rows.data() + n * padded_cols, s.row.q.data(), static_cast<std::size_t>(cols));
        for (std::int64_t b = 0; b < blocks; ++b) {
            s.scale[static_cast<std::size_t>(b * tile + n)] = s.row.scale[static_cast<std::size_t>(b)];
            if (mins) s.min[static_cast<std::size_t>(b * tile + n)] = s.row.min[static_cast<std::size_t>(b)];
        }
    }
    for (std::int64_t b = 0; b < blocks; b += 2) {
        __m512i words[tile];
        for (int n = 0; n < tile; ++n) words[n] = _mm512_loadu_si512(s.rows.data() + n * padded_cols + b * block);
        amx::transpose_16x16(words);
        for (int k = 0; k < tile; ++k) _mm512_storeu_si512(s.q.data() + b * b_tile_bytes + k * 64, words[k]);
    }
}

// One block's tile product, T_b for 16 tokens x 16 rows, into C tile `C` from A tile C + 1 and B
// tile C + 2 (two such triples, 0-2 and 3-5, let one block's product run while the previous
// block's totals are taken).
template <int C, bool Mins>
inline void tile_product(const QuantizedRows& x, std::int64_t t0, const TileRows& s, std::int64_t b) {
    static_assert(C == 0 || C == 3);
    const std::int8_t* a = x.q.data() + t0 * x.cols + b * block;
    const std::int8_t* b_tile = s.q.data() + b * b_tile_bytes;
    // The intrinsics take tile numbers as literals.
    if constexpr (C == 0) {
        _tile_loadd(1, a, x.cols);
        _tile_loadd(2, b_tile, 64);
        _tile_zero(0);
        if constexpr (Mins) _tile_dpbsud(0, 1, 2);  // nibbles 0..15: unsigned
        else _tile_dpbssd(0, 1, 2);
    } else {
        _tile_loadd(4, a, x.cols);
        _tile_loadd(5, b_tile, 64);
        _tile_zero(3);
        if constexpr (Mins) _tile_dpbsud(3, 4, 5);
        else _tile_dpbssd(3, 4, 5);
    }
}

// Tokens t0..t0 + 15 (rows past x.tokens are zero activations with zero scales) against the 16
// rows in s: per block one tile product gives T_b for every row and token, which its chain takes
// with the scale and min terms. Chain by chain (blocks j, j + 8, ... for chain j), so that a
// chain's 16 tokens x 16 rows stay in registers across its blocks. Two stages of lag hide the
// tiles' latency: while block i's totals are stored, block i + 1's product runs and block
// i − 1's stored totals are taken.
template <bool Mins>
void tile_tokens(const TileRows& s, const QuantizedRows& x, std::int64_t t0, float* y, std::int64_t y_stride,
                 std::int64_t tokens, __mmask16 valid_rows) {
    const std::int64_t blocks = x.blocks;
    alignas(64) float chain[chains][tile][tile];  // each written whole when its last block is taken
    for (std::int64_t j = blocks; j < chains; ++j)  // chains of rows shorter than eight blocks
        for (int m = 0; m < tile; ++m) _mm512_store_ps(chain[j][m], _mm512_setzero_ps());
    alignas(64) std::int32_t totals[2][tile][tile];
    // The block after b in chain order, or −1 after the last.
    const auto following = [&](std::int64_t b) -> std::int64_t {
        if (b + chains < blocks) return b + chains;
        const std::int64_t next_chain = b % chains + 1;
        return next_chain < std::min<std::int64_t>(chains, blocks) ? next_chain : -1;
    };
    __m512 acc[tile];
    for (int m = 0; m < tile; ++m) acc[m] = _mm512_setzero_ps();
    // Block b's stored totals into its chain; the chain goes to memory after its last block.
    const auto take = [&](std::int64_t b, const std::int32_t (*block_totals)[tile]) {
        const __m512 w_scale = _mm512_loadu_ps(s.scale.data() + b * tile);
        const __m512 w_min = _mm512_loadu_ps(s.min.data() + b * tile);
        const float* x_scale = x.scale.data() + t0 * blocks + b;
        const float* x_sum = x.scaled_sum.data() + t0 * blocks + b;
        for (int m = 0; m < tile; ++m) {
            const __m512 scale = _mm512_mul_ps(w_scale, _mm512_set1_ps(x_scale[m * blocks]));
            acc[m] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_load_si512(block_totals[m])), acc[m]);
            if constexpr (Mins) acc[m] = _mm512_fmadd_ps(w_min, _mm512_set1_ps(x_sum[m * blocks]), acc[m]);
        }
        if (b + chains >= blocks)
            for (int m = 0; m < tile; ++m) {
                _mm512_store_ps(chain[b % chains][m], acc[m]);
                acc[m] = _mm512_setzero_ps();
            }
    };
    tile_product<0, Mins>(x, t0, s, 0);
    std::int64_t previous = -1;
    for (std::int64_t b = 0, stage = 0; b >= 0; stage ^= 1) {
        const std::int64_t next = following(b);
        if (stage == 0) {
            if (next >= 0) tile_product<3, Mins>(x, t0, s, next);
            _tile_stored(0, totals[0], 64);
        } else {
            if (next >= 0) tile_product<0, Mins>(x, t0, s, next);
            _tile_stored(3, totals[1], 64);
        }
        if (previous >= 0) take(previous, totals[stage ^ 1]);
        previous = b;
        b = next;
        if (b < 0) take(previous, totals[stage]);
    }
    for (std::int64_t m = 0; m < tokens; ++m) {
        const __m512 s0 = _mm512_add_ps(_mm512_load_ps(chain[0][m]), _mm512_load_ps(chain[4][m]));
        const __m512 s1 = _mm512_add_ps(_mm512_load_ps(chain[1][m]), _mm512_load_ps(chain[5][m]));
        const __m512 s2 = _mm512_add_ps(_mm512_load_ps(chain[2][m]), _mm512_load_ps(chain[6][m]));
        const __m512 s3 = _mm512_add_ps(_mm512_load_ps(chain[3][m]), _mm512_load_ps(chain[7][m]));
        _mm512_mask_storeu_ps(y + (t0 + m) * y_stride, valid_rows, _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
    }
}
#pragma GCC diagnostic pop

#endif

}  // namespace

bool supported(DType type) {
    switch (type) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q8_0: case DType::MXFP4:
        case DType::Q4_K: case DType::Q6_K:
            return true;
        default:
            return false;
    }
}

void QuantizedRows::shape(std::int64_t rows, std::int64_t columns) {
    tokens = rows;
    cols = columns;
    blocks = columns / block;
    const std::int64_t padded_tokens = (tokens + tile - 1) / tile * tile;
    q.resize(static_cast<std::size_t>(padded_tokens * cols));
    std::fill(q.begin() + tokens * cols, q.end(), std::int8_t{0});
    scale.resize(static_cast<std::size_t>(padded_tokens * blocks));
    std::fill(scale.begin() + tokens * blocks, scale.end(), 0.0f);
    scaled_sum.resize(static_cast<std::size_t>(padded_tokens * blocks));
    std::fill(scaled_sum.begin() + tokens * blocks, scaled_sum.end(), 0.0f);
}

void QuantizedRows::quantize_tokens(const float* x, std::int64_t first, std::int64_t count, Code code) {
    for (std::int64_t i = first * blocks; i < (first + count) * blocks; ++i) {
        const float* xb = x + i * block;
        std::int8_t* qb = q.data() + i * block;
        const BlockRange range = code == Code::Native ? block_range_native(xb) : block_range_scalar(xb);
        const float d = range.amax / 127.0f;
        std::int32_t sum = 0;
        float block_scale = d;
        if (!range.finite || d < FLT_MIN) {
            block_scale = range.finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
            std::fill(qb, qb + block, std::int8_t{0});
        } else if (code == Code::Native) {
            sum = round_block_native(xb, 1.0f / d, qb);
        } else {
            sum = round_block_scalar(xb, 1.0f / d, qb);
        }
        scale[static_cast<std::size_t>(i)] = block_scale;
        scaled_sum[static_cast<std::size_t>(i)] = block_scale * static_cast<float>(sum);
    }
}

void QuantizedRows::quantize(const float* x, std::int64_t rows, std::int64_t columns, Code code) {
    shape(rows, columns);
    quantize_tokens(x, 0, rows, code);
}

void dot_row(DType type, const std::uint8_t* row, const QuantizedRows& x, float* y, std::int64_t y_stride,
             UnpackedRow& w, [[maybe_unused]] Code code) {
#ifdef KINDRED_AVX2
    if (code == Code::Native && x.tokens >= 1 && x.tokens <= packed_tokens && dot_packed_avx2(type, row, x, y, y_stride)) return;
#endif
    unpack_row(type, row, x.blocks, w, code);
    const bool mins = has_mins(type), sub_scales = type == DType::Q6_K;
    const RowView view{w.q.data(), w.scale.data(), mins ? w.min.data() : nullptr,
                       sub_scales ? w.sub_scales.data() : nullptr};
#ifdef KINDRED_AVX2
    if (code == Code::Native) {
        if (sub_scales) dot_tokens_avx2<true, false>(view, x, y, y_stride);
        else if (mins) dot_tokens_avx2<false, true>(view, x, y, y_stride);
        else dot_tokens_avx2<false, false>(view, x, y, y_stride);
        return;
    }
#endif
    dot_tokens_scalar(view, x, y, y_stride);
}

const char* describe_code() {
#if !defined(KINDRED_AVX2)
    const char* rows = "rows: portable C++";
#elif (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
    const char* rows = "rows: AVX2+VNNI";
#else
    const char* rows = "rows: AVX2";
#endif
    static const std::string text =
        tiles_available() ? fmt::format("AMX-INT8 tiles above {} tokens; {}", packed_tokens, rows) : std::string(rows);
    return text.c_str();
}

bool tiles_available() {
#ifdef KINDRED_AMX_INT8
    return cpu_isa().amx_int8;
#else
    return false;
#endif
}

bool use_tiles(DType type, std::int64_t tokens) {
    return tiles_available() && tokens > packed_tokens && supported(type) && type != DType::Q6_K;
}

void dot_tiles(DType type, [[maybe_unused]] const std::uint8_t* rows, [[maybe_unused]] std::int64_t row_stride,
               [[maybe_unused]] std::int64_t count, const QuantizedRows& x, [[maybe_unused]] float* y,
               [[maybe_unused]] std::int64_t y_stride, [[maybe_unused]] TileRows& scratch) {
    if (!use_tiles(type, x.tokens))
        fail("int8 dot_tiles: {} rows x {} tokens have no AMX-INT8 path on this CPU or build", dtype_name(type), x.tokens);
#ifdef KINDRED_AMX_INT8
    _tile_loadconfig(&tile_config);
    for (std::int64_t r0 = 0; r0 < count; r0 += tile) {
        const std::int64_t n = std::min<std::int64_t>(tile, count - r0);
        interleave_rows(type, rows + r0 * row_stride, row_stride, n, x.blocks, scratch);
        const auto valid_rows = static_cast<__mmask16>((1u << n) - 1);
        for (std::int64_t t0 = 0; t0 < x.tokens; t0 += tile) {
            const std::int64_t tokens = std::min<std::int64_t>(tile, x.tokens - t0);
            if (has_mins(type)) tile_tokens<true>(scratch, x, t0, y + r0, y_stride, tokens, valid_rows);
            else tile_tokens<false>(scratch, x, t0, y + r0, y_stride, tokens, valid_rows);
        }
    }
#endif
}

}  // namespace kindred::kernels::cpu::int8
