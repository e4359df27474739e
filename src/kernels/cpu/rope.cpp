// kernels/cpu/rope.cpp — rotary embeddings (pairings explained in kernels/rope.h).
#include "kernels/rope.h"

#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {

void rope_inverse_frequencies(float* inv_freq, std::int64_t rotary_dim, double theta) {
    if (rotary_dim <= 0 || rotary_dim % 2 != 0) fail("rope: rotary dimension {} must be even and positive", rotary_dim);
    const float base = static_cast<float>(theta);
    for (std::int64_t i = 0; i < rotary_dim / 2; ++i) {
        // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in fp32.
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
        inv_freq[i] = 1.0f / std::pow(base, exponent);
    }
}

void rope_table(float* cos, float* sin, const float* inv_freq, std::int64_t rotary_dim, std::int64_t first_position,
                std::int64_t tokens, float attention_factor) {
    const std::int64_t half = rotary_dim / 2;
    for (std::int64_t t = 0; t < tokens; ++t) {
        const float position = static_cast<float>(first_position + t);
        for (std::int64_t i = 0; i < half; ++i) {
            const double angle = static_cast<double>(position * inv_freq[i]);
            cos[t * half + i] = static_cast<float>(std::cos(angle)) * attention_factor;
            sin[t * half + i] = static_cast<float>(std::sin(angle)) * attention_factor;
        }
    }
}

namespace {

// Tokens per thread-pool work item (SmolLM2's q: 16 x 576 floats).
constexpr std::int64_t token_grain = 16;

// Rotates the pairs (a[i], b[i]) of one head, i < half, by a token's cos c and sin s with s' =
// sign · s: a' = a·c − b·s' and b' = b·c + a·s', the products by s' rounded, the rest fused.
void rotate_half_pairs(float* a, float* b, const float* c, const float* s, float sign, std::int64_t half) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    i = cpu::vector_steps(half, [&](auto lanes, std::int64_t at) {
        using L = decltype(lanes);
        const auto x0 = L::load(a + at), x1 = L::load(b + at), ci = L::load(c + at);
        const auto si = L::load(s + at) * L::set1(sign);
        L::store(a + at, L::fma(x0, ci, -(x1 * si)));
        L::store(b + at, L::fma(x1, ci, x0 * si));
    });
#endif
    for (; i < half; ++i) {
        const float x0 = a[i], x1 = b[i], si = sign * s[i];
        a[i] = std::fma(x0, c[i], -(x1 * si));
        b[i] = std::fma(x1, c[i], x0 * si);
    }
}

// rotate_half_pairs for adjacent pairs (v[2i], v[2i + 1]).
void rotate_adjacent_pairs(float* v, const float* c, const float* s, float sign, std::int64_t half) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX512
    // Eight pairs at a time: each cos and sin twice, the sin negated in the even lanes, so that one
    // lane computes x0·c − x1·s and its partner x1·c + x0·s from the pair and its swap.
    const __m512i twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 signs = _mm512_set_ps(sign, -sign, sign, -sign, sign, -sign, sign, -sign, sign, -sign, sign, -sign,
                                       sign, -sign, sign, -sign);
    // (The masked forms of the loads and permutes: GCC 12 warns about the plain ones' undefined lanes.)
    for (; i + 8 <= half; i += 8) {
        const __m512 x = _mm512_loadu_ps(v + 2 * i), swapped = _mm512_mask_permute_ps(x, 0xFFFF, x, 0xB1);
        const __m512 ci = _mm512_maskz_permutexvar_ps(0xFFFF, twice, _mm512_maskz_loadu_ps(0xFF, c + i));
        const __m512 si = _mm512_maskz_permutexvar_ps(0xFFFF, twice, _mm512_maskz_loadu_ps(0xFF, s + i));
        _mm512_storeu_ps(v + 2 * i, _mm512_fmadd_ps(x, ci, swapped * (si * signs)));
    }
#endif
    for (; i < half; ++i) {
        const float x0 = v[2 * i], x1 = v[2 * i + 1], si = sign * s[i];
        v[2 * i] = std::fma(x0, c[i], -(x1 * si));
        v[2 * i + 1] = std::fma(x1, c[i], x0 * si);
    }
}

// Applies [[c, -sign·s], [sign·s, c]] to every pair: sign +1 is the forward rotation, -1 its
// transpose (multiplying by +1 is exact, so the forward's results do not depend on this sharing).
// Tokens are split over the thread pool; every element is computed the same way on any split.
void rotate_pairs(float* x, const float* cos, const float* sin, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, std::int64_t rotary_dim, RopePairing pairing, float sign) {
    const std::int64_t half = rotary_dim / 2;
    thread_pool().parallel_for(tokens, token_grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t t = begin; t < end; ++t)
            for (std::int64_t h = 0; h < heads; ++h) {
                float* v = x + (t * heads + h) * head_dim;
                if (pairing == RopePairing::Half)
                    rotate_half_pairs(v, v + half, cos + t * half, sin + t * half, sign, half);
                else
                    rotate_adjacent_pairs(v, cos + t * half, sin + t * half, sign, half);
            }
    });
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, std::int64_t rotary_dim, RopePairing pairing) {
    rotate_pairs(x, cos, sin, tokens, heads, head_dim, rotary_dim, pairing, 1.0f);
}

void rope_backward(float* dx, const float* cos, const float* sin, std::int64_t tokens, std::int64_t heads,
                   std::int64_t head_dim, std::int64_t rotary_dim, RopePairing pairing) {
    rotate_pairs(dx, cos, sin, tokens, heads, head_dim, rotary_dim, pairing, -1.0f);
}

}  // namespace kindred::kernels
