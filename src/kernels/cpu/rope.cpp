// kernels/cpu/rope.cpp — rotary embeddings (pairings explained in kernels/rope.h).
#include "kernels/rope.h"

#include <cmath>

#include "core/error.h"

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

// Applies [[c, -sign·s], [sign·s, c]] to every pair: sign +1 is the forward rotation, -1 its
// transpose (multiplying by +1 is exact, so the forward's results do not depend on this sharing).
void rotate_pairs(float* x, const float* cos, const float* sin, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, std::int64_t rotary_dim, RopePairing pairing, float sign) {
    const std::int64_t half = rotary_dim / 2;
    // Half pairs (i, i + half); adjacent pairs (2i, 2i + 1).
    const std::int64_t first_step = pairing == RopePairing::Half ? 1 : 2;
    const std::int64_t partner = pairing == RopePairing::Half ? half : 1;
    for (std::int64_t t = 0; t < tokens; ++t) {
        const float* c = cos + t * half;
        const float* s = sin + t * half;
        for (std::int64_t h = 0; h < heads; ++h) {
            float* v = x + (t * heads + h) * head_dim;
            for (std::int64_t i = 0; i < half; ++i) {
                float* a = v + i * first_step;
                float* b = a + partner;
                const float x0 = *a;
                const float x1 = *b;
                const float si = sign * s[i];
                *a = x0 * c[i] - x1 * si;
                *b = x1 * c[i] + x0 * si;
            }
        }
    }
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
