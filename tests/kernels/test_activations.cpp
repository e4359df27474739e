// Tests for kernels/activations.h and kernels/softmax.h against double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/activations.h"
#include "kernels/cpu/simd.h"
#include "kernels/softmax.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;

TEST(GatedActivation, SiluAndGeluTanhMatchDoubleReference) {
    const int n = 1003;  // not a multiple of the vector width: the scalar tail runs too
    const auto gate = random_floats(n, 1, -12.0f, 12.0f);
    const auto up = random_floats(n, 2, -3.0f, 3.0f);
    std::vector<float> out(n);
    gated_activation_forward(out.data(), gate.data(), up.data(), n, GateActivation::Silu);
    for (int i = 0; i < n; ++i) {
        const double g = gate[i];
        const double expected = g / (1.0 + std::exp(-g)) * up[i];
        // exp within ~2 ulp, then a division and a product: a few ulp relative.
        ASSERT_NEAR(out[i], expected, 1e-6 * std::abs(expected) + 1e-7) << i;
    }
    gated_activation_forward(out.data(), gate.data(), up.data(), n, GateActivation::GeluTanh);
    for (int i = 0; i < n; ++i) {
        const double g = gate[i];
        const double expected =
            0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (g + 0.044715 * g * g * g))) * up[i];
        // tanh near ±1 makes 1 + tanh lose relative precision for negative g: absolute bound.
        ASSERT_NEAR(out[i], expected, 1e-5 * std::abs(expected) + 1e-6) << i;
    }
}

TEST(VectorExp, WithinFewUlpOfDoubleExp) {
    const auto x = random_floats(4099, 9, -87.0f, 40.0f);  // the sum stays inside fp32
    std::vector<float> y(x.size());
    double sum = 0.0;
    const float total = cpu::exp_shifted(y.data(), x.data(), 0.5f, static_cast<std::int64_t>(x.size()));
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double expected = std::exp(static_cast<double>(x[i] - 0.5f));
        sum += expected;
        // Polynomial and range reduction error ≤ ~2 ulp; 4 ulp (2^-21 relative) bounds it.
        ASSERT_NEAR(y[i], expected, expected * 4.8e-7) << x[i];
    }
    EXPECT_NEAR(total, sum, sum * 1e-5);  // fp32 sum of 4099 positive terms
    // The clamped low end underflows to zero instead of producing garbage.
    const float tiny[] = {-1000.0f};
    float out[1];
    cpu::exp_shifted(out, tiny, 0.0f, 1);
    EXPECT_EQ(out[0], 0.0f);
}

TEST(Residual, AddsInPlace) {
    std::vector<float> y = {1, 2, 3}, x = {0.5f, -2, 4};
    residual_forward(y.data(), x.data(), 3);
    EXPECT_EQ(y, (std::vector<float>{1.5f, 0, 7}));
}

TEST(Softmax, MatchesDoubleReferenceWithTemperature) {
    const auto logits = random_floats(5000, 3, -20.0f, 20.0f);
    std::vector<float> probs(5000);
    softmax_forward(probs.data(), logits.data(), 5000, 0.7f);
    double max_logit = -1e30, sum = 0.0;
    for (float l : logits) max_logit = std::max<double>(max_logit, l);
    for (float l : logits) sum += std::exp((l - max_logit) / 0.7);
    for (int i = 0; i < 5000; ++i) {
        const double expected = std::exp((logits[i] - max_logit) / 0.7) / sum;
        // The scaled logit is rounded to fp32 (≤ 30·2^-24 absolute), expf adds a few ulp.
        ASSERT_NEAR(probs[i], expected, 1e-5 * expected + 1e-12) << i;
    }
}

TEST(Argmax, LowestIndexWinsTies) {
    const std::vector<float> logits = {1, 5, 3, 5, -1};
    EXPECT_EQ(argmax(logits.data(), 5), 1);
}

TEST(SampleSoftmax, QuantilesFollowTheDistribution) {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> logits = {0.0f, std::log(2.0f), -inf, std::log(1.0f)};  // probs 1/4, 1/2, 0, 1/4
    std::vector<int> counts(4, 0);
    const int draws = 10000;
    for (int i = 0; i < draws; ++i)
        ++counts[static_cast<std::size_t>(sample_softmax(logits.data(), 4, 1.0f, (static_cast<float>(i) + 0.5f) / static_cast<float>(draws)))];
    // Evenly spaced u values: each count is within one draw of probability · draws.
    EXPECT_NEAR(counts[0], 2500, 1);
    EXPECT_NEAR(counts[1], 5000, 1);
    EXPECT_EQ(counts[2], 0);
    EXPECT_NEAR(counts[3], 2500, 1);
    EXPECT_EQ(sample_softmax(logits.data(), 4, 1.0f, 0.0f), 0);
    EXPECT_EQ(sample_softmax(logits.data(), 4, 1.0f, std::nextafter(1.0f, 0.0f)), 3);
}

}  // namespace
}  // namespace kindred::kernels
