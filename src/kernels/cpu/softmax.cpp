// kernels/cpu/softmax.cpp — softmax, argmax and fused softmax sampling over a logits row.
// Sums accumulate in double: vocabularies reach 200k entries, where fp32 sums drift.
#include "kernels/softmax.h"

#include <cmath>

namespace kindred::kernels {
namespace {

float max_of(const float* x, std::int64_t n) {
    float m = x[0];
    for (std::int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
    return m;
}

}  // namespace

void softmax_forward(float* probs, const float* logits, std::int64_t n, float temperature) {
    const float max_logit = max_of(logits, n);
    const float inverse_t = 1.0f / temperature;
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
        probs[i] = std::exp((logits[i] - max_logit) * inverse_t);
        sum += probs[i];
    }
    const float inverse = static_cast<float>(1.0 / sum);
    for (std::int64_t i = 0; i < n; ++i) probs[i] *= inverse;
}

void softmax_backward(float* dlogits, const float* dprobs, const float* probs, std::int64_t n, float temperature) {
    double dot = 0.0;
    for (std::int64_t i = 0; i < n; ++i) dot += static_cast<double>(probs[i]) * dprobs[i];
    const auto mean = static_cast<float>(dot);
    const float inverse_t = 1.0f / temperature;
    for (std::int64_t i = 0; i < n; ++i) dlogits[i] += probs[i] * (dprobs[i] - mean) * inverse_t;
}

std::int64_t argmax(const float* logits, std::int64_t n) {
    std::int64_t best = 0;
    for (std::int64_t i = 1; i < n; ++i)
        if (logits[i] > logits[best]) best = i;
    return best;
}

std::int64_t sample_softmax(const float* logits, std::int64_t n, float temperature, float u) {
    const float max_logit = max_of(logits, n);
    const float inverse_t = 1.0f / temperature;
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>((logits[i] - max_logit) * inverse_t));
    const double target = static_cast<double>(u) * sum;
    double cumulative = 0.0;
    std::int64_t last_possible = argmax(logits, n);
    for (std::int64_t i = 0; i < n; ++i) {
        const double p = std::exp(static_cast<double>((logits[i] - max_logit) * inverse_t));
        if (p == 0.0) continue;
        cumulative += p;
        last_possible = i;
        if (cumulative > target) return i;
    }
    // Rounding left the cumulative sum a hair below u * sum: the last drawable entry wins.
    return last_possible;
}

}  // namespace kindred::kernels
