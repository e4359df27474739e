// kernels/cpu/simd.h — small vector helpers shared by the CPU kernels (internal to kernels/cpu).
// AVX2+FMA when the build targets it, plain loops otherwise; both give fp32 results.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KINDRED_AVX2 1
#endif

namespace kindred::kernels::cpu {

#ifdef KINDRED_AVX2
// e^x for x in [-88.37, 88.37] (clamped outside; the low end gives 0), within ~2 ulp of expf:
// x = n ln2 + r with ln2 split in two (Cody-Waite), e^r by a degree-6 minimax polynomial
// (the Cephes expf coefficients), 2^n assembled in the exponent bits.
inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
    const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

inline float hsum(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
}
#endif

// Σ a[i] * b[i] in fp32 (four partial sums on AVX2).
inline float dot(const float* a, const float* b, std::int64_t n) {
    std::int64_t i = 0;
    float total = 0.0f;
#ifdef KINDRED_AVX2
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    total = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
#endif
    for (; i < n; ++i) total += a[i] * b[i];
    return total;
}

// max(start, x[0], ..., x[n-1]) (NaNs are not expected).
inline float max_of(float start, const float* x, std::int64_t n) {
    std::int64_t i = 0;
    float best = start;
#ifdef KINDRED_AVX2
    __m256 m = _mm256_set1_ps(start);
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
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
    const __m256 s = _mm256_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    total = hsum(acc);
#endif
    for (; i < n; ++i) total += (y[i] = std::exp(x[i] - shift));
    return total;
}

// y[i] = x[i] / (1 + exp(-x[i])) * up[i]; y may alias x or up.
inline void silu_mul(float* y, const float* x, const float* up, std::int64_t n) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(x + i);
        const __m256 e = exp256(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
#endif
    for (; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i])) * up[i];
}

// y[i] += alpha * x[i]
inline void axpy(float* y, float alpha, const float* x, std::int64_t n) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    const __m256 a = _mm256_set1_ps(alpha);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace kindred::kernels::cpu
