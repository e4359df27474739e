// kernels/softmax.h — softmax over logits, argmax, and sampling fused with the softmax so that
// no probability vector is materialized (one pass for the max, one for the sum, one to pick).
#pragma once

#include <cstdint>

namespace kindred::kernels {

// probs[i] = exp((logits[i] - max) / temperature) / sum; temperature > 0. probs may alias logits.
void softmax_forward(float* probs, const float* logits, std::int64_t n, float temperature);

// Backward of softmax_forward given its output: dlogits[i] += probs[i] (dprobs[i] − Σ_j probs[j]
// dprobs[j]) / temperature (the sum in double, as the forward's).
void softmax_backward(float* dlogits, const float* dprobs, const float* probs, std::int64_t n, float temperature);

// Index of the largest logit; the lowest index wins ties (as torch.argmax). n > 0.
std::int64_t argmax(const float* logits, std::int64_t n);

// Draws an index from softmax(logits / temperature) with uniform u in [0, 1): the first index
// whose cumulative probability exceeds u. Entries equal to -inf never win. n > 0, temperature > 0.
std::int64_t sample_softmax(const float* logits, std::int64_t n, float temperature, float u);

}  // namespace kindred::kernels
