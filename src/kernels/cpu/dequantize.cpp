#include "kernels/dequantize.h"

#include <array>
#include <cstring>

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define KINDRED_DEQUANT_AVX2 1
#endif

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu/exact_float.h"
#include "kernels/cpu/ggml_blocks.h"
#include "kernels/quantize.h"

namespace kindred {
namespace {

using namespace ggml_blocks;

// ---- scalar reference ----

void scalar_f16(const std::uint8_t* src, float* dst, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) dst[i] = load_half(src + 2 * i);
}

void scalar_bf16(const std::uint8_t* src, float* dst, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, src + 2 * i, sizeof bits);
        dst[i] = bf16_to_fp32(bits);
    }
}

void scalar_q4_0(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ40Bytes, dst += kQK) {
        const float d = load_half(src);
        const std::uint8_t* qs = src + 2;
        for (int j = 0; j < kQK / 2; ++j) {
            dst[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
            dst[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
        }
    }
}

void scalar_q4_1(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ41Bytes, dst += kQK) {
        const float d = load_half(src);
        const float m = load_half(src + 2);
        const std::uint8_t* qs = src + 4;
        for (int j = 0; j < kQK / 2; ++j) {
            dst[j] = static_cast<float>(qs[j] & 0xF) * d + m;
            dst[j + kQK / 2] = static_cast<float>(qs[j] >> 4) * d + m;
        }
    }
}

void scalar_q5_0(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ50Bytes, dst += kQK) {
        const float d = load_half(src);
        std::uint32_t high_bits;
        std::memcpy(&high_bits, src + 2, sizeof high_bits);
        const std::uint8_t* qs = src + 6;
        for (int j = 0; j < kQK / 2; ++j) {
            const int first = (qs[j] & 0xF) | static_cast<int>(((high_bits >> j) & 1u) << 4);
            const int second = (qs[j] >> 4) | static_cast<int>(((high_bits >> (j + kQK / 2)) & 1u) << 4);
            dst[j] = static_cast<float>(first - 16) * d;
            dst[j + kQK / 2] = static_cast<float>(second - 16) * d;
        }
    }
}

void scalar_q8_0(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ80Bytes, dst += kQK) {
        const float d = load_half(src);
        for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(static_cast<std::int8_t>(src[2 + j])) * d;
    }
}

void scalar_q4_k(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ4KBytes) {
        const float d = load_half(src);
        const float dmin = load_half(src + 2);
        const std::uint8_t* scales = src + 4;
        const std::uint8_t* q = src + 16;
        for (int j = 0; j < kQK_K / 64; ++j, q += 32) {
            std::uint8_t sc, mn;
            q4k_scale_min(2 * j, scales, sc, mn);
            const float d1 = d * sc;
            const float m1 = dmin * mn;
            q4k_scale_min(2 * j + 1, scales, sc, mn);
            const float d2 = d * sc;
            const float m2 = dmin * mn;
            for (int l = 0; l < 32; ++l) *dst++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *dst++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
    }
}

void scalar_q6_k(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ6KBytes) {
        const float d = load_half(src + 208);
        const std::uint8_t* ql = src;
        const std::uint8_t* qh = src + 128;
        const auto* sc = reinterpret_cast<const std::int8_t*>(src + 192);
        for (int half = 0; half < 2; ++half, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * sc[is] * static_cast<float>(q1);
                dst[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
                dst[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
                dst[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
            }
        }
    }
}

void scalar_mxfp4(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kMxfp4Bytes, dst += kQK) {
        const float d = e8m0_to_fp32_half(src[0]);
        const std::uint8_t* qs = src + 1;
        for (int j = 0; j < kQK / 2; ++j) {
            dst[j] = static_cast<float>(kMxfp4Values[qs[j] & 0xF]) * d;
            dst[j + kQK / 2] = static_cast<float>(kMxfp4Values[qs[j] >> 4]) * d;
        }
    }
}

// NF4 (core/dtype.h's Nf4Layout) kernels take the whole tensor and dequantize its blocks
// [first_block, first_block + blocks). Nf4Absmax(b) is block b's absmax as bitsandbytes restores it
// from the double quantization, and as kernels/quantize.h's nf4_absmax computes it: a product and a
// sum, each rounded (this file is compiled without contraction).
class Nf4Absmax {
public:
    Nf4Absmax(const std::uint8_t* tensor, const Nf4Layout& layout)
        : codes_(tensor + layout.absmax_codes), nested_(tensor + layout.nested), map_(nf4_absmax_code()) {
        std::memcpy(&offset_, nested_ + sizeof(float) * layout.groups, sizeof offset_);
    }
    float operator()(std::uint64_t b) const {
        float nested;
        std::memcpy(&nested, nested_ + sizeof(float) * (b / kNf4NestedBlockSize), sizeof nested);
        return map_[codes_[b]] * nested + offset_;
    }

private:
    const std::uint8_t* codes_;
    const std::uint8_t* nested_;
    const std::array<float, 256>& map_;
    float offset_ = 0.0f;
};

// bitsandbytes' order: element 2i in the high nibble of byte i, element 2i + 1 in the low.
void scalar_nf4(const std::uint8_t* tensor, const Nf4Layout& layout, std::uint64_t first_block, float* dst,
                std::uint64_t blocks) {
    const Nf4Absmax absmax_of(tensor, layout);
    for (std::uint64_t b = first_block; b < first_block + blocks; ++b, dst += kNf4BlockSize) {
        const float absmax = absmax_of(b);
        const std::uint8_t* qs = tensor + b * kNf4BlockSize / 2;
        for (int i = 0; i < kNf4BlockSize / 2; ++i) {
            dst[2 * i] = kNf4Codebook[qs[i] >> 4] * absmax;
            dst[2 * i + 1] = kNf4Codebook[qs[i] & 0xF] * absmax;
        }
    }
}

// ---- AVX2 ----
#ifdef KINDRED_DEQUANT_AVX2

// Eight unsigned bytes -> eight floats (exact).
inline __m256 u8x8_to_ps(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
inline __m256 i8x8_to_ps(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); }

void avx2_f16(const std::uint8_t* src, float* dst, std::int64_t n) {
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(halves));
    }
    scalar_f16(src + 2 * i, dst + i, n - i);
}

void avx2_q4_1(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    const __m128i low_mask = _mm_set1_epi8(0x0F);
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ41Bytes, dst += kQK) {
        const __m256 d = _mm256_set1_ps(load_half(src));
        const __m256 m = _mm256_set1_ps(load_half(src + 2));
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 4));
        const __m128i lo = _mm_and_si128(q, low_mask);
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), low_mask);
        _mm256_storeu_ps(dst + 0, _mm256_add_ps(_mm256_mul_ps(u8x8_to_ps(lo), d), m));
        _mm256_storeu_ps(dst + 8, _mm256_add_ps(_mm256_mul_ps(u8x8_to_ps(_mm_srli_si128(lo, 8)), d), m));
        _mm256_storeu_ps(dst + 16, _mm256_add_ps(_mm256_mul_ps(u8x8_to_ps(hi), d), m));
        _mm256_storeu_ps(dst + 24, _mm256_add_ps(_mm256_mul_ps(u8x8_to_ps(_mm_srli_si128(hi, 8)), d), m));
    }
}

// 16 packed nibble pairs -> 32 signed bytes through a 16-entry table: low nibbles are
// elements 0..15, high nibbles 16..31 (the Q4_0 / MXFP4 layout).
inline void nibbles_through_table(const std::uint8_t* qs, __m128i table, __m128i& first, __m128i& second) {
    const __m128i low_mask = _mm_set1_epi8(0x0F);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    first = _mm_shuffle_epi8(table, _mm_and_si128(q, low_mask));
    second = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), low_mask));
}

inline void scale_i8x16_pair(__m128i first, __m128i second, __m256 d, float* dst) {
    _mm256_storeu_ps(dst + 0, _mm256_mul_ps(i8x8_to_ps(first), d));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(i8x8_to_ps(_mm_srli_si128(first, 8)), d));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(i8x8_to_ps(second), d));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(i8x8_to_ps(_mm_srli_si128(second, 8)), d));
}

void avx2_q4_0(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    const __m128i minus_eight = _mm_setr_epi8(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ40Bytes, dst += kQK) {
        __m128i first, second;
        nibbles_through_table(src + 2, minus_eight, first, second);
        scale_i8x16_pair(first, second, _mm256_set1_ps(load_half(src)), dst);
    }
}

// The 32 bits of `bits` (little-endian bytes) as 32 bytes, 0x10 where the bit is set, else 0:
// byte i of the result takes bit i % 8 of byte i / 8.
inline __m256i bits_to_0x10_bytes(const std::uint8_t* bits) {
    std::uint32_t word;
    std::memcpy(&word, bits, sizeof word);
    const __m256i byte_of_bit = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                                 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit_in_byte = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(word)), byte_of_bit);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_in_byte), bit_in_byte);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

void avx2_q5_0(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    const __m128i low_mask = _mm_set1_epi8(0x0F);
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ50Bytes, dst += kQK) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 6));
        const __m256i nibbles = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low_mask), _mm_and_si128(q, low_mask));
        const __m256i values = _mm256_sub_epi8(_mm256_or_si256(nibbles, bits_to_0x10_bytes(src + 2)), sixteen);
        scale_i8x16_pair(_mm256_castsi256_si128(values), _mm256_extracti128_si256(values, 1),
                         _mm256_set1_ps(load_half(src)), dst);
    }
}

void avx2_mxfp4(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    const __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values.data()));
    for (std::int64_t b = 0; b < blocks; ++b, src += kMxfp4Bytes, dst += kQK) {
        __m128i first, second;
        nibbles_through_table(src + 1, values, first, second);
        scale_i8x16_pair(first, second, _mm256_set1_ps(e8m0_to_fp32_half(src[0])), dst);
    }
}

void avx2_q8_0(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ80Bytes, dst += kQK) {
        const __m256 d = _mm256_set1_ps(load_half(src));
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 18));
        scale_i8x16_pair(q0, q1, d, dst);
    }
}

// dst[0..31] = scale * bytes - offset for 32 bytes given as two 16-byte halves.
inline void scale_sub_32(__m128i first, __m128i second, __m256 scale, __m256 offset, float* dst) {
    _mm256_storeu_ps(dst + 0, _mm256_sub_ps(_mm256_mul_ps(scale, u8x8_to_ps(first)), offset));
    _mm256_storeu_ps(dst + 8, _mm256_sub_ps(_mm256_mul_ps(scale, u8x8_to_ps(_mm_srli_si128(first, 8))), offset));
    _mm256_storeu_ps(dst + 16, _mm256_sub_ps(_mm256_mul_ps(scale, u8x8_to_ps(second)), offset));
    _mm256_storeu_ps(dst + 24, _mm256_sub_ps(_mm256_mul_ps(scale, u8x8_to_ps(_mm_srli_si128(second, 8))), offset));
}

void avx2_q4_k(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ4KBytes) {
        const float d = load_half(src);
        const float dmin = load_half(src + 2);
        const std::uint8_t* scales = src + 4;
        const std::uint8_t* q = src + 16;
        for (int j = 0; j < kQK_K / 64; ++j, q += 32, dst += 64) {
            std::uint8_t sc, mn;
            q4k_scale_min(2 * j, scales, sc, mn);
            const __m256 d1 = _mm256_set1_ps(d * sc);
            const __m256 m1 = _mm256_set1_ps(dmin * mn);
            q4k_scale_min(2 * j + 1, scales, sc, mn);
            const __m256 d2 = _mm256_set1_ps(d * sc);
            const __m256 m2 = _mm256_set1_ps(dmin * mn);
            const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
            const __m256i lo = _mm256_and_si256(bytes, low_mask);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_mask);
            scale_sub_32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1), d1, m1, dst);
            scale_sub_32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1), d2, m2, dst + 32);
        }
    }
}

// dst[0..31] = (16 values * s0, 16 values * s1) for 32 signed bytes.
inline void scale_32_i8(__m256i values, __m256 s0, __m256 s1, float* dst) {
    const __m128i first = _mm256_castsi256_si128(values);
    const __m128i second = _mm256_extracti128_si256(values, 1);
    _mm256_storeu_ps(dst + 0, _mm256_mul_ps(s0, i8x8_to_ps(first)));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(s0, i8x8_to_ps(_mm_srli_si128(first, 8))));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(s1, i8x8_to_ps(second)));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(s1, i8x8_to_ps(_mm_srli_si128(second, 8))));
}

void avx2_q6_k(const std::uint8_t* src, float* dst, std::int64_t blocks) {
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    const __m256i two_bits = _mm256_set1_epi8(0x03);
    const __m256i bias = _mm256_set1_epi8(32);
    for (std::int64_t b = 0; b < blocks; ++b, src += kQ6KBytes) {
        const float d = load_half(src + 208);
        const std::uint8_t* ql = src;
        const std::uint8_t* qh = src + 128;
        const auto* sc = reinterpret_cast<const std::int8_t*>(src + 192);
        for (int half = 0; half < 2; ++half, dst += 128, ql += 64, qh += 32, sc += 8) {
            const __m256i la = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
            const __m256i lb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
            const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
            // Six-bit values: low nibble from ql, two high bits from qh, shifted into bits 4..5.
            const auto six_bits = [&](__m256i low, int high_shift) {
                const __m256i high = _mm256_and_si256(_mm256_srli_epi16(h, high_shift), two_bits);
                return _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), bias);
            };
            const __m256i q1 = six_bits(_mm256_and_si256(la, low_mask), 0);
            const __m256i q2 = six_bits(_mm256_and_si256(lb, low_mask), 2);
            const __m256i q3 = six_bits(_mm256_and_si256(_mm256_srli_epi16(la, 4), low_mask), 4);
            const __m256i q4 = six_bits(_mm256_and_si256(_mm256_srli_epi16(lb, 4), low_mask), 6);
            const auto scale = [&](int k) { return _mm256_set1_ps(d * sc[k]); };
            scale_32_i8(q1, scale(0), scale(1), dst);
            scale_32_i8(q2, scale(2), scale(3), dst + 32);
            scale_32_i8(q3, scale(4), scale(5), dst + 64);
            scale_32_i8(q4, scale(6), scale(7), dst + 96);
        }
    }
}

// Codes through the 16-entry codebook as two 8-float halves (permutevar picks within a half,
// a blend by the code's top bit chooses the half); 8 bytes -> 16 elements per step. The halves are
// scaled by the block's absmax once, before the lookups: each element is still the one product
// codebook[code] · absmax, but a block costs 2 multiplies instead of 8.
void avx2_nf4(const std::uint8_t* tensor, const Nf4Layout& layout, std::uint64_t first_block, float* dst,
              std::uint64_t blocks) {
    const Nf4Absmax absmax_of(tensor, layout);
    const __m256 lower = _mm256_loadu_ps(kNf4Codebook.data());
    const __m256 upper = _mm256_loadu_ps(kNf4Codebook.data() + 8);
    const __m256i seven = _mm256_set1_epi32(7);
    const __m256i low_mask = _mm256_set1_epi32(0xF);
    for (std::uint64_t b = first_block; b < first_block + blocks; ++b, dst += kNf4BlockSize) {
        const std::uint8_t* qs = tensor + b * kNf4BlockSize / 2;
        const __m256 scale = _mm256_set1_ps(absmax_of(b));
        const auto lookup = [&](__m256i codes) {
            const __m256 in_upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(codes, seven));
            return _mm256_mul_ps(_mm256_blendv_ps(_mm256_permutevar8x32_ps(lower, codes),
                                    _mm256_permutevar8x32_ps(upper, codes), in_upper), scale);
        };
        for (int i = 0; i < kNf4BlockSize / 2; i += 8) {
            const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + i)));
            const __m256i high = _mm256_srli_epi32(bytes, 4), low = _mm256_and_si256(bytes, low_mask);
            // Interleave to element order: h0 l0 h1 l1 ... (unpack works per 128-bit lane).
            const __m256i pairs_a = _mm256_unpacklo_epi32(high, low);  // h0 l0 h1 l1 | h4 l4 h5 l5
            const __m256i pairs_b = _mm256_unpackhi_epi32(high, low);  // h2 l2 h3 l3 | h6 l6 h7 l7
            _mm256_storeu_ps(dst + 2 * i, lookup(_mm256_permute2x128_si256(pairs_a, pairs_b, 0x20)));
            _mm256_storeu_ps(dst + 2 * i + 8, lookup(_mm256_permute2x128_si256(pairs_a, pairs_b, 0x31)));
        }
    }
}

#endif  // KINDRED_DEQUANT_AVX2

using RowFunction = void (*)(const std::uint8_t*, float*, std::int64_t);

// Per-type kernels; `count` is elements for plain types and blocks for quantized ones.
RowFunction scalar_kernel(DType type) {
    switch (type) {
        case DType::F16: return scalar_f16;
        case DType::BF16: return scalar_bf16;
        case DType::Q4_0: return scalar_q4_0;
        case DType::Q4_1: return scalar_q4_1;
        case DType::Q5_0: return scalar_q5_0;
        case DType::Q8_0: return scalar_q8_0;
        case DType::Q4_K: return scalar_q4_k;
        case DType::Q6_K: return scalar_q6_k;
        case DType::MXFP4: return scalar_mxfp4;
        default: return nullptr;
    }
}

RowFunction fast_kernel(DType type) {
#ifdef KINDRED_DEQUANT_AVX2
    switch (type) {
        case DType::F16: return avx2_f16;
        case DType::Q4_0: return avx2_q4_0;
        case DType::Q4_1: return avx2_q4_1;
        case DType::Q5_0: return avx2_q5_0;
        case DType::Q8_0: return avx2_q8_0;
        case DType::Q4_K: return avx2_q4_k;
        case DType::Q6_K: return avx2_q6_k;
        case DType::MXFP4: return avx2_mxfp4;
        default: break;
    }
#endif
    return scalar_kernel(type);
}

// NF4's blocks are not self-contained (core/dtype.h's Nf4Layout), so its kernels take the tensor.
using Nf4Function = void (*)(const std::uint8_t*, const Nf4Layout&, std::uint64_t, float*, std::uint64_t);

Nf4Function nf4_kernel(bool fast) {
#ifdef KINDRED_DEQUANT_AVX2
    if (fast) return avx2_nf4;
#endif
    return scalar_nf4;
}

void run(DType type, const void* tensor, std::int64_t elements, std::int64_t first, float* dst, std::int64_t n,
         bool fast) {
    if (n < 0) fail("dequantize: negative element count {}", n);
    if (first < 0 || first > elements - n)
        fail("dequantize: elements [{}, {}) are outside a tensor of {}", first, first + n, elements);
    const DTypeInfo& info = dtype_info(type);
    if (!info.dequantizable) fail("dequantize: tensor type {} is not supported", info.name);
    if (n % info.block_size != 0 || first % info.block_size != 0) {
        fail("dequantize: elements [{}, {}) of {} are not whole {}-element blocks", first, first + n, info.name,
             info.block_size);
    }
    const auto* bytes = static_cast<const std::uint8_t*>(tensor);
    const std::int64_t block = info.block_size, first_block = first / block;
    if (type == DType::NF4) {
        nf4_kernel(fast)(bytes, nf4_layout(static_cast<std::uint64_t>(elements)), static_cast<std::uint64_t>(first_block),
                         dst, static_cast<std::uint64_t>(n / block));
        return;
    }
    bytes += first_block * info.block_bytes;  // whole blocks, inside a tensor that exists: no overflow
    if (type == DType::F32) {
        std::memcpy(dst, bytes, static_cast<std::size_t>(n) * sizeof(float));
        return;
    }
    (fast ? fast_kernel : scalar_kernel)(type)(bytes, dst, n / info.block_size);
}

}  // namespace

void dequantize_row(DType type, const void* src, float* dst, std::int64_t n) { run(type, src, n, 0, dst, n, true); }

void dequantize_span(DType type, const void* tensor, std::int64_t elements, std::int64_t first, float* dst,
                     std::int64_t n) {
    run(type, tensor, elements, first, dst, n, true);
}

namespace detail {
void dequantize_row_scalar(DType type, const void* src, float* dst, std::int64_t n) {
    run(type, src, n, 0, dst, n, false);
}
void dequantize_span_scalar(DType type, const void* tensor, std::int64_t elements, std::int64_t first, float* dst,
                            std::int64_t n) {
    run(type, tensor, elements, first, dst, n, false);
}
}  // namespace detail

}  // namespace kindred
