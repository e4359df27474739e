// kernels/cpu/simd.h — small vector helpers shared by the CPU kernels (internal to kernels/cpu).
// AVX2+FMA when the build targets it, plain loops otherwise; both give fp32 results. The
// element-wise helpers are written once over lanes L (Lanes8, and Lanes16 where the build targets
// AVX-512F: vector_steps runs 16 lanes at a time, then 8): every lane does the same operations at
// either width, and sums keep eight partial sums (lane i mod 8) at both, so AVX-512 gives the bits
// AVX2 gives.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "kernels/cpu/ggml_blocks.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KINDRED_AVX2 1
#if defined(__AVX512F__)
#define KINDRED_AVX512 1
#endif
#endif

namespace kindred::kernels::cpu {

#ifdef KINDRED_AVX2
// The lane operations of the templates below beyond + - * / (which GCC and Clang define on
// vector types, as their own intrinsics do), for 8 lanes (AVX2) and 16 (AVX-512F), in the style
// of gemm_f32_kernel.h's V.
struct Lanes8 {
    using Reg = __m256;
    static Reg set1(float value) { return _mm256_set1_ps(value); }
    static Reg load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
    static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
    static Reg fnma(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
    static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
    static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
    static Reg floor(Reg x) { return _mm256_floor_ps(x); }
    // 2^n for integral n in [-126, 127], assembled in the exponent bits.
    static Reg pow2(Reg n) {
        const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        return _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));
    }
    // acc = op(acc, v) for eight partial sums (lane i mod 8).
    template <typename Op>
    static __m256 into_eights(__m256 acc, Reg v, Op op) { return op(acc, v); }
};

#ifdef KINDRED_AVX512
// Where AVX-512F's plain form passes an undefined register through (min, max, rounding,
// conversions, shifts, extracts), the form that merges or zeroes under a full mask: GCC 12 warns
// (-Wmaybe-uninitialized) about the plain forms once they are inlined.
struct Lanes16 {
    using Reg = __m512;
    static constexpr __mmask16 all = 0xFFFF;
    static Reg set1(float value) { return _mm512_set1_ps(value); }
    static Reg load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
    static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
    static Reg fnma(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
    static Reg min(Reg a, Reg b) { return _mm512_maskz_min_ps(all, a, b); }
    static Reg max(Reg a, Reg b) { return _mm512_maskz_max_ps(all, a, b); }
    static Reg floor(Reg x) { return _mm512_maskz_roundscale_ps(all, x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
    static Reg pow2(Reg n) {
        const __m512i biased = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(all, n), _mm512_set1_epi32(127));
        return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, biased, 23));
    }
    // Lanes i and i + 8 are consecutive terms of partial sum i, joined in the order two 8-lane
    // steps would join them.
    template <typename Op>
    static __m256 into_eights(__m256 acc, Reg v, Op op) { return op(op(acc, half<0>(v)), half<1>(v)); }
    template <int Which>
    static __m256 half(Reg v) {
        return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), Which));
    }
};
#endif

// Calls step(L{}, i) for whole vectors of [0, n): step(Lanes16{}, i) for [i, i + 16) while they
// fit (AVX-512F), then step(Lanes8{}, i) for [i, i + 8); returns where the scalar remainder starts.
template <typename Step>
std::int64_t vector_steps(std::int64_t n, Step step) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX512
    for (; i + 16 <= n; i += 16) step(Lanes16{}, i);
#endif
    for (; i + 8 <= n; i += 8) step(Lanes8{}, i);
    return i;
}

// e^x for x in [-88.37, 88.37] (clamped outside; the low end gives 0), within ~2 ulp of expf:
// x = n ln2 + r with ln2 split in two (Cody-Waite), e^r by a degree-6 minimax polynomial
// (the Cephes expf coefficients), 2^n assembled in the exponent bits.
template <typename L>
typename L::Reg exp_lanes(typename L::Reg x) {
    using Reg = typename L::Reg;
    x = L::max(L::min(x, L::set1(88.3762626647949f)), L::set1(-88.3762626647949f));
    const Reg n = L::floor(L::fma(x, L::set1(1.44269504088896341f), L::set1(0.5f)));
    Reg r = L::fnma(n, L::set1(0.693359375f), x);
    r = L::fnma(n, L::set1(-2.12194440e-4f), r);
    Reg p = L::set1(1.9875691500e-4f);
    p = L::fma(p, r, L::set1(1.3981999507e-3f));
    p = L::fma(p, r, L::set1(8.3334519073e-3f));
    p = L::fma(p, r, L::set1(4.1665795894e-2f));
    p = L::fma(p, r, L::set1(1.6666665459e-1f));
    p = L::fma(p, r, L::set1(5.0000001201e-1f));
    p = L::fma(p, r * r, r) + L::set1(1.0f);
    return p * L::pow2(n);
}

inline float hsum(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
}
#endif

// A row of fp32 values that dot_row and axpy_row read 32 or 8 (AVX2) or 1 at a time: plain
// floats, or a KV cache's F16 or Q8_0 row (model/kv_cache.h) converted as it is read, each element
// exactly the fp32 value dequantize_row gives it (fp16 widened; Q8_0's int8 times its block's fp16
// scale, one rounded product), so that dot and axpy over such a row give the bits they give over
// the row read back into floats first. thirty_two(i) reads elements [i, i + 32) for i a multiple of
// 32 (a Q8_0 block: its scale read once).
#ifdef KINDRED_AVX2
struct Eights {
    __m256 v[4];
};
#endif

struct F32Row {
    const float* x;
    float at(std::int64_t i) const { return x[i]; }
#ifdef KINDRED_AVX2
    __m256 eight(std::int64_t i) const { return _mm256_loadu_ps(x + i); }
    Eights thirty_two(std::int64_t i) const { return {{eight(i), eight(i + 8), eight(i + 16), eight(i + 24)}}; }
#endif
};

struct F16Row {
    const std::uint16_t* x;
    float at(std::int64_t i) const { return fp16_to_fp32(x[i]); }
#ifdef KINDRED_AVX2
    __m256 eight(std::int64_t i) const {
#ifdef __F16C__
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
#else
        alignas(32) float widened[8];
        for (int j = 0; j < 8; ++j) widened[j] = at(i + j);
        return _mm256_load_ps(widened);
#endif
    }
    Eights thirty_two(std::int64_t i) const { return {{eight(i), eight(i + 8), eight(i + 16), eight(i + 24)}}; }
#endif
};

struct Q8_0Row {
    static constexpr std::int64_t block = ggml_blocks::kQK, block_bytes = ggml_blocks::kQ80Bytes;
    static constexpr std::int64_t levels_at = 2;  // the int8 levels follow the fp16 scale
    const std::uint8_t* blocks;
    float scale(std::int64_t i) const { return ggml_blocks::load_half(blocks + i / block * block_bytes); }
    std::int8_t level(std::int64_t i) const {
        return static_cast<std::int8_t>(blocks[i / block * block_bytes + levels_at + i % block]);
    }
    float at(std::int64_t i) const { return static_cast<float>(level(i)) * scale(i); }
#ifdef KINDRED_AVX2
    __m256 eight(std::int64_t i) const { return scaled(blocks + i / block * block_bytes + levels_at + i % block, _mm256_set1_ps(scale(i))); }
    Eights thirty_two(std::int64_t i) const {
        const std::uint8_t* levels = blocks + i / block * block_bytes + levels_at;
        const __m256 d = _mm256_set1_ps(scale(i));
        return {{scaled(levels, d), scaled(levels + 8, d), scaled(levels + 16, d), scaled(levels + 24, d)}};
    }

private:
    static __m256 scaled(const std::uint8_t* levels, __m256 d) {
        const __m128i eight_levels = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(levels));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(eight_levels)), d);
    }
#endif
};

// Σ a[i] * b[i] in fp32 (four partial sums on AVX2); b any row above.
template <typename Row>
float dot_row(const float* a, const Row& b, std::int64_t n) {
    std::int64_t i = 0;
    float total = 0.0f;
#ifdef KINDRED_AVX2
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        const Eights x = b.thirty_two(i);
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), x.v[0], acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), x.v[1], acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), x.v[2], acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), x.v[3], acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), b.eight(i), acc0);
    total = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
#endif
    for (; i < n; ++i) total += a[i] * b.at(i);
    return total;
}

inline float dot(const float* a, const float* b, std::int64_t n) { return dot_row(a, F32Row{b}, n); }

// max(start, x[0], ..., x[n-1]) (NaNs are not expected).
inline float max_of(float start, const float* x, std::int64_t n) {
    std::int64_t i = 0;
    float best = start;
#ifdef KINDRED_AVX2
    __m256 m = _mm256_set1_ps(start);
    i = vector_steps(n, [&](auto lanes, std::int64_t at) {
        using L = decltype(lanes);
        m = L::into_eights(m, L::load(x + at), [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); });
    });
    __m128 half = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    half = _mm_max_ps(half, _mm_movehl_ps(half, half));
    half = _mm_max_ss(half, _mm_movehdup_ps(half));
    best = _mm_cvtss_f32(half);
#endif
    for (; i < n; ++i) best = x[i] > best ? x[i] : best;
    return best;
}

// y[i] = exp(x[i] - shift); returns Σ y[i] (fp32). y may alias x.
inline float exp_shifted(float* y, const float* x, float shift, std::int64_t n) {
    std::int64_t i = 0;
    float total = 0.0f;
#ifdef KINDRED_AVX2
    __m256 acc = _mm256_setzero_ps();
    i = vector_steps(n, [&](auto lanes, std::int64_t at) {
        using L = decltype(lanes);
        const typename L::Reg e = exp_lanes<L>(L::load(x + at) - L::set1(shift));
        L::store(y + at, e);
        acc = L::into_eights(acc, e, [](__m256 a, __m256 b) { return a + b; });
    });
    total = hsum(acc);
#endif
    for (; i < n; ++i) total += (y[i] = std::exp(x[i] - shift));
    return total;
}

// y[i] = x[i] / (1 + exp(-x[i])) * up[i]; y may alias x or up.
inline void silu_mul(float* y, const float* x, const float* up, std::int64_t n) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    i = vector_steps(n, [&](auto lanes, std::int64_t at) {
        using L = decltype(lanes);
        const typename L::Reg g = L::load(x + at);
        L::store(y + at, g / (L::set1(1.0f) + exp_lanes<L>(L::set1(0.0f) - g)) * L::load(up + at));
    });
#endif
    for (; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i])) * up[i];
}

// y[i] += alpha * x[i]; x any row of dot_row's.
template <typename Row>
void axpy_row(float* y, float alpha, const Row& x, std::int64_t n) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    const __m256 a = _mm256_set1_ps(alpha);
    // Each element is its own fused multiply-add: reading 32 at a time changes no bits.
    for (; i + 32 <= n; i += 32) {
        const Eights eights = x.thirty_two(i);
        for (int j = 0; j < 4; ++j)
            _mm256_storeu_ps(y + i + 8 * j, _mm256_fmadd_ps(a, eights.v[j], _mm256_loadu_ps(y + i + 8 * j)));
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, x.eight(i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; ++i) y[i] += alpha * x.at(i);
}

inline void axpy(float* y, float alpha, const float* x, std::int64_t n) { axpy_row(y, alpha, F32Row{x}, n); }

// axpy_row(y, weights[p], row_at(p), n) for p = first..last in turn: the same fused multiply-adds
// in the same order, so the same bits; with AVX2 and n = 64 (a head of most models) y stays in
// registers across the rows instead of going through memory for each.
template <typename RowAt>
void axpy_rows(float* y, const float* weights, std::int64_t first, std::int64_t last, RowAt row_at, std::int64_t n) {
#ifdef KINDRED_AVX2
    if (n == 64) {
        __m256 acc[8];
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_loadu_ps(y + 8 * j);
        for (std::int64_t p = first; p <= last; ++p) {
            const auto row = row_at(p);
            const __m256 a = _mm256_set1_ps(weights[p]);
            const Eights low = row.thirty_two(0), high = row.thirty_two(32);
            for (int j = 0; j < 4; ++j) {
                acc[j] = _mm256_fmadd_ps(a, low.v[j], acc[j]);
                acc[4 + j] = _mm256_fmadd_ps(a, high.v[j], acc[4 + j]);
            }
        }
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(y + 8 * j, acc[j]);
        return;
    }
#endif
    for (std::int64_t p = first; p <= last; ++p) axpy_row(y, weights[p], row_at(p), n);
}

}  // namespace kindred::kernels::cpu
