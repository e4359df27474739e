// kernels/cpu/int8_dot.cpp — the 8-bit-activation dot products (see int8_dot.h).
#include "kernels/cpu/int8_dot.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

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

// 16 bytes of nibble pairs -> 32 signed bytes through a 16-entry table, in element order.
inline __m256i nibbles_through_table(const std::uint8_t* qs, __m128i table) {
    const __m128i low_mask = _mm_set1_epi8(0x0F);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i low = _mm_shuffle_epi8(table, _mm_and_si128(packed, low_mask));
    const __m128i high = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(packed, 4), low_mask));
    return _mm256_set_m128i(high, low);
}

inline void store32(std::int8_t* q, __m256i values) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), values); }

// The AVX2 unpackers of the types the shipped models use; false for the rest (scalar).
bool unpack_avx2(DType type, const std::uint8_t* src, std::int64_t blocks, UnpackedRow& w) {
    std::int8_t* q = w.q.data();
    float* scale = w.scale.data();
    const __m128i identity = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    switch (type) {
        case DType::Q4_0: {
            const __m128i minus_eight = _mm_sub_epi8(identity, _mm_set1_epi8(8));
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
                store32(q, nibbles_through_table(src + 4, identity));
            }
            return true;
        case DType::MXFP4: {
            const __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values.data()));
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

// What the token loop reads of an unpacked row; sub_scales / min are null when the type has none.
struct RowView {
    const std::int8_t* q;
    const float* scale;
    const float* min;
    const std::int16_t* sub_scales;
};

// The eight lanes summed as cpu::hsum does: (l, l + 4), then (l, l + 2), then (0, 1).
float sum_lanes(const float* lane) {
    const float s0 = lane[0] + lane[4], s1 = lane[1] + lane[5], s2 = lane[2] + lane[6], s3 = lane[3] + lane[7];
    return (s0 + s2) + (s1 + s3);
}

// Token t's product with the row, for every token of x: the reference order (int8_dot.h).
void dot_tokens_scalar(const RowView& w, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    const std::int64_t blocks = x.blocks;
    for (std::int64_t t = 0; t < x.tokens; ++t) {
        const std::int8_t* xq = x.q.data() + t * x.cols;
        const float* xd = x.scale.data() + t * blocks;
        const float* xs = x.scaled_sum.data() + t * blocks;
        float lane[8] = {};
        float mins = 0.0f;
        for (std::int64_t b = 0; b < blocks; ++b) {
            const std::int8_t* wb = w.q + b * block;
            const std::int8_t* xb = xq + b * block;
            const float scale = w.scale[b] * xd[b];
            for (int l = 0; l < 8; ++l) {
                std::int32_t sum = 0;
                for (int i = 4 * l; i < 4 * l + 4; ++i) sum += wb[i] * xb[i];
                if (w.sub_scales != nullptr) sum *= w.sub_scales[b * 16 + 2 * l];
                lane[l] = std::fma(scale, static_cast<float>(sum), lane[l]);
            }
            if (w.min != nullptr) mins = std::fma(w.min[b], xs[b], mins);
        }
        y[t * y_stride] = sum_lanes(lane) + mins;
    }
}

#ifdef KINDRED_AVX2

// A weight block as the dot reads it: its 32 values (signed, or the nibbles 0..15 of the types
// with mins), its scale, its min (Q4_1, Q4_K) and its lanes' weights (Q6_K's sub-block scales as
// int16, otherwise ones).
struct Block {
    __m256i q;
    float scale;
    float min;
    __m256i weights;
};

// Tokens first..first + Tokens − 1 of x against the row whose blocks `block_at(b)` gives: each
// weight block is read once for all of them, and each token's accumulators see exactly the
// operations they see alone. The types with mins (Q4_1, Q4_K) have nibbles 0..15, which maddubs
// takes as they are; the others' signed values go in as |w| with x carrying w's sign (the same
// integers either way).
template <bool Mins, int Tokens, typename BlockAt>
void dot_token_group_avx2(BlockAt block_at, const QuantizedRows& x, std::int64_t first, float* y, std::int64_t y_stride) {
    const std::int64_t blocks = x.blocks;
    const std::int8_t* xq = x.q.data() + first * x.cols;
    const float* xd = x.scale.data() + first * blocks;
    const float* xs = x.scaled_sum.data() + first * blocks;
    __m256 acc[Tokens];
    float mins[Tokens];
    for (int k = 0; k < Tokens; ++k) {
        acc[k] = _mm256_setzero_ps();
        mins[k] = 0.0f;
    }
    for (std::int64_t b = 0; b < blocks; ++b) {
        const Block w = block_at(b);
        const __m256i magnitude = Mins ? w.q : _mm256_abs_epi8(w.q);
        for (int k = 0; k < Tokens; ++k) {
            const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + k * x.cols + b * block));
            // maddubs multiplies unsigned by signed bytes. Adjacent pairs stay within int16
            // (|w| <= 128, |x| <= 127: 2·128·127 < 32768).
            const __m256i pairs = _mm256_maddubs_epi16(magnitude, Mins ? xv : _mm256_sign_epi8(xv, w.q));
            const __m256i lanes = _mm256_madd_epi16(pairs, w.weights);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(w.scale * xd[k * blocks + b]), _mm256_cvtepi32_ps(lanes), acc[k]);
            if constexpr (Mins) mins[k] = std::fma(w.min, xs[k * blocks + b], mins[k]);
        }
    }
    for (int k = 0; k < Tokens; ++k) y[(first + k) * y_stride] = hsum(acc[k]) + mins[k];
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
    for (; t + 4 <= x.tokens; t += 4) dot_token_group_avx2<Mins, 4>(block_at, x, t, y, y_stride);
    for (; t < x.tokens; ++t) dot_token_group_avx2<Mins, 1>(block_at, x, t, y, y_stride);
}

// Up to four tokens against a packed row, each block unpacked in registers as unpack_avx2 unpacks
// it to memory (the same values, scales and mins, so the same bits): a decode step reads each
// weight block once either way, and this way never writes it back out.
template <bool Mins, typename BlockAt>
void dot_few_tokens_avx2(BlockAt block_at, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    switch (x.tokens) {
        case 1: dot_token_group_avx2<Mins, 1>(block_at, x, 0, y, y_stride); break;
        case 2: dot_token_group_avx2<Mins, 2>(block_at, x, 0, y, y_stride); break;
        case 3: dot_token_group_avx2<Mins, 3>(block_at, x, 0, y, y_stride); break;
        default: dot_token_group_avx2<Mins, 4>(block_at, x, 0, y, y_stride); break;
    }
}

constexpr std::int64_t fused_tokens = 4;  // above this, unpacking a row once for all tokens costs less

// False for the types without this form, whose rows are unpacked first: Q5_0, and the K-quants,
// whose scales are spread over a 256-block (bench/int8_dot: decoding them block by block measured
// 40-70% slower than unpacking the row at once, a super-block's scales at its first block no
// faster; this form is 17-32% faster for the rest).
bool dot_packed_avx2(DType type, const std::uint8_t* src, const QuantizedRows& x, float* y, std::int64_t y_stride) {
    const __m128i identity = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m256i ones = _mm256_set1_epi16(1);
    switch (type) {
        case DType::Q4_0: {
            const __m128i minus_eight = _mm_sub_epi8(identity, _mm_set1_epi8(8));
            dot_few_tokens_avx2<false>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kQ40Bytes;
                return Block{nibbles_through_table(p + 2, minus_eight), load_half(p), 0.0f, ones};
            }, x, y, y_stride);
            return true;
        }
        case DType::Q4_1:
            dot_few_tokens_avx2<true>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kQ41Bytes;
                return Block{nibbles_through_table(p + 4, identity), load_half(p), load_half(p + 2), ones};
            }, x, y, y_stride);
            return true;
        case DType::Q8_0:
            dot_few_tokens_avx2<false>([&](std::int64_t b) {
                const std::uint8_t* p = src + b * kQ80Bytes;
                return Block{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2)), load_half(p), 0.0f, ones};
            }, x, y, y_stride);
            return true;
        case DType::MXFP4: {
            const __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values.data()));
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

void QuantizedRows::quantize(const float* x, std::int64_t rows, std::int64_t columns, Code code) {
    tokens = rows;
    cols = columns;
    blocks = columns / block;
    q.resize(static_cast<std::size_t>(tokens * cols));
    scale.resize(static_cast<std::size_t>(tokens * blocks));
    scaled_sum.resize(static_cast<std::size_t>(tokens * blocks));
    for (std::int64_t i = 0; i < tokens * blocks; ++i) {
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

void dot_row(DType type, const std::uint8_t* row, const QuantizedRows& x, float* y, std::int64_t y_stride,
             UnpackedRow& w, [[maybe_unused]] Code code) {
#ifdef KINDRED_AVX2
    if (code == Code::Native && x.tokens >= 1 && x.tokens <= fused_tokens && dot_packed_avx2(type, row, x, y, y_stride)) return;
#endif
    const std::int64_t blocks = x.blocks;
    const bool mins = type == DType::Q4_1 || type == DType::Q4_K;
    const bool sub_scales = type == DType::Q6_K;
    w.q.resize(static_cast<std::size_t>(x.cols));
    w.scale.resize(static_cast<std::size_t>(blocks));
    if (mins) w.min.resize(static_cast<std::size_t>(blocks));
    if (sub_scales) w.sub_scales.resize(static_cast<std::size_t>(blocks * 16));
    bool unpacked = false;
#ifdef KINDRED_AVX2
    if (code == Code::Native) unpacked = unpack_avx2(type, row, blocks, w);
#endif
    if (!unpacked) unpack_scalar(type, row, blocks, w);
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

}  // namespace kindred::kernels::cpu::int8
