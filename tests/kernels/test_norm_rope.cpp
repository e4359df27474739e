// Tests for kernels/norm.h and kernels/rope.h against double-precision references, and the
// GGUF q/k permutation identity that lets arch `llama` files use adjacent-pair rope unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;

TEST(RmsNorm, MatchesDoubleReferenceWithAndWithoutOffset) {
    const std::int64_t rows = 3, dim = 576;
    const auto x = random_floats(rows * dim, 1, -3.0f, 3.0f);
    const auto w = random_floats(dim, 2);
    for (bool offset : {false, true}) {
        std::vector<float> out(rows * dim), rstd(rows);
        rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), rows, dim, 1e-5f, offset);
        for (std::int64_t r = 0; r < rows; ++r) {
            double sum = 0.0;
            for (std::int64_t i = 0; i < dim; ++i) sum += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
            const double scale = 1.0 / std::sqrt(sum / dim + 1e-5);
            EXPECT_NEAR(rstd[r], scale, 1e-6 * scale);
            for (std::int64_t i = 0; i < dim; ++i) {
                const double expected = x[r * dim + i] * scale * (offset ? 1.0 + w[i] : w[i]);
                // Three fp32 roundings (mean, rsqrt, two products): a few ulp of the result.
                ASSERT_NEAR(out[r * dim + i], expected, 1e-6 * std::abs(expected) + 1e-7);
            }
        }
    }
}

TEST(RmsNorm, MayWriteInPlace) {
    auto x = random_floats(64, 3);
    const auto w = random_floats(64, 4);
    std::vector<float> expected(64);
    rmsnorm_forward(expected.data(), nullptr, x.data(), w.data(), 1, 64, 1e-6f, false);
    rmsnorm_forward(x.data(), nullptr, x.data(), w.data(), 1, 64, 1e-6f, false);
    EXPECT_EQ(x, expected);
}

TEST(Rope, InverseFrequenciesFollowTheta) {
    std::vector<float> inv(32);
    rope_inverse_frequencies(inv.data(), 64, 100000.0);
    for (int i = 0; i < 32; ++i) EXPECT_NEAR(inv[i], std::pow(100000.0, -2.0 * i / 64.0), 1e-6 * inv[i]);
}

// Reference rotation in double for one head, HF rotate_half convention.
std::vector<double> rotate_half_reference(const float* v, std::int64_t head_dim, std::int64_t rotary_dim,
                                          double position, const std::vector<float>& inv) {
    std::vector<double> out(v, v + head_dim);
    const std::int64_t half = rotary_dim / 2;
    for (std::int64_t i = 0; i < half; ++i) {
        const double angle = position * inv[i];
        out[i] = v[i] * std::cos(angle) - v[i + half] * std::sin(angle);
        out[i + half] = v[i + half] * std::cos(angle) + v[i] * std::sin(angle);
    }
    return out;
}

TEST(Rope, HalfPairingMatchesDoubleReference) {
    const std::int64_t tokens = 5, heads = 3, head_dim = 64, first = 1000;
    std::vector<float> inv(head_dim / 2), cos(tokens * head_dim / 2), sin(tokens * head_dim / 2);
    rope_inverse_frequencies(inv.data(), head_dim, 10000.0);
    rope_table(cos.data(), sin.data(), inv.data(), head_dim, first, tokens, 1.0f);
    const auto original = random_floats(tokens * heads * head_dim, 5);
    auto x = original;
    rope_forward(x.data(), cos.data(), sin.data(), tokens, heads, head_dim, head_dim, RopePairing::Half);
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t h = 0; h < heads; ++h) {
            const std::int64_t offset = (t * heads + h) * head_dim;
            const auto expected = rotate_half_reference(original.data() + offset, head_dim, head_dim,
                                                        static_cast<double>(first + t), inv);
            // The angle is rounded to fp32 as HF does: at position ~1000 that moves it by up to
            // 1000·2^-24 ≈ 6e-5 rad, so values of magnitude ≤ 1.4 move by ≤ 1e-4.
            for (std::int64_t i = 0; i < head_dim; ++i) ASSERT_NEAR(x[offset + i], expected[i], 1e-4);
        }
}

TEST(Rope, AdjacentPairingOnGgufPermutedRowsEqualsHalfPairing) {
    // GGUF arch llama stores row 2i = HF row i and row 2i+1 = HF row i + d/2 within each head.
    const std::int64_t tokens = 4, heads = 2, head_dim = 16, rotary = 16;
    std::vector<float> inv(rotary / 2), cos(tokens * rotary / 2), sin(tokens * rotary / 2);
    rope_inverse_frequencies(inv.data(), rotary, 10000.0);
    rope_table(cos.data(), sin.data(), inv.data(), rotary, 7, tokens, 1.0f);
    auto hf = random_floats(tokens * heads * head_dim, 6);
    std::vector<float> gguf(hf.size());
    const std::int64_t half = head_dim / 2;
    auto permute = [&](const std::vector<float>& from, std::vector<float>& to) {
        for (std::int64_t row = 0; row < tokens * heads; ++row)
            for (std::int64_t i = 0; i < half; ++i) {
                to[row * head_dim + 2 * i] = from[row * head_dim + i];
                to[row * head_dim + 2 * i + 1] = from[row * head_dim + i + half];
            }
    };
    permute(hf, gguf);
    rope_forward(hf.data(), cos.data(), sin.data(), tokens, heads, head_dim, rotary, RopePairing::Half);
    rope_forward(gguf.data(), cos.data(), sin.data(), tokens, heads, head_dim, rotary, RopePairing::Adjacent);
    std::vector<float> expected(hf.size());
    permute(hf, expected);
    EXPECT_EQ(gguf, expected);  // the same fp32 operations on the same values: bit-identical
}

TEST(Rope, PartialRotaryLeavesTailAndAttentionFactorScales) {
    const std::int64_t head_dim = 8, rotary = 4;
    std::vector<float> inv(2), cos(2), sin(2);
    rope_inverse_frequencies(inv.data(), rotary, 10000.0);
    rope_table(cos.data(), sin.data(), inv.data(), rotary, 3, 1, 2.0f);
    EXPECT_NEAR(cos[0], 2.0 * std::cos(3.0), 1e-6);
    auto x = random_floats(head_dim, 7);
    const auto before = x;
    rope_forward(x.data(), cos.data(), sin.data(), 1, 1, head_dim, rotary, RopePairing::Half);
    for (std::int64_t i = rotary; i < head_dim; ++i) EXPECT_EQ(x[i], before[i]);
}

}  // namespace
}  // namespace kindred::kernels
