// kernels/rope.h — rotary position embeddings.
// Two pairings exist: HF's rotate_half rotates dimensions (i, i + d/2) ("half", ggml's neox mode);
// ggml's normal mode rotates adjacent dimensions (2i, 2i + 1). GGUF files of arch `llama` store
// the q/k rows of each head permuted (row 2i holds HF row i, row 2i+1 holds HF row i + d/2), so
// adjacent-pair rope on those rows computes exactly what half-pair rope computes on HF rows; the
// attention scores are unchanged because q and k share the permutation and v is not permuted.
// Callers pick the pairing that matches how their weights are stored and never un-permute.
#pragma once

#include <cstdint>

namespace kindred::kernels {

enum class RopePairing { Half, Adjacent };

// inv_freq[i] = theta^(-2i / rotary_dim) for i < rotary_dim / 2, computed in fp32 as HF does.
void rope_inverse_frequencies(float* inv_freq, std::int64_t rotary_dim, double theta);

// cos/sin[t][i] = cos/sin((first_position + t) * inv_freq[i]) * attention_factor, angles rounded to
// fp32 as in HF (the product is taken in fp32). Tables are [tokens x rotary_dim / 2].
void rope_table(float* cos, float* sin, const float* inv_freq, std::int64_t rotary_dim, std::int64_t first_position,
                std::int64_t tokens, float attention_factor);

// Rotates x[tokens x heads x head_dim] in place; the first rotary_dim dimensions of every head rotate.
void rope_forward(float* x, const float* cos, const float* sin, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, std::int64_t rotary_dim, RopePairing pairing);

// Backward of rope_forward with the same tables, in place on the gradient dx: each pair gets the
// transposed map [[c, s], [-s, c]], which is the inverse rotation when attention_factor is 1
// (with a factor f the forward scales by f and so does its transpose). Frequency scalings (linear,
// YaRN, Llama 3, rope_freqs divisors) live in the tables, so they need nothing here. Dimensions
// past rotary_dim pass through unchanged.
void rope_backward(float* dx, const float* cos, const float* sin, std::int64_t tokens, std::int64_t heads,
                   std::int64_t head_dim, std::int64_t rotary_dim, RopePairing pairing);

}  // namespace kindred::kernels
