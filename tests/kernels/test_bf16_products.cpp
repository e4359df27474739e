// Tests for Precision::BF16 (kernels/matmul.h) where the kernels use it: matmul_forward and
// matmul_backward_input for every weight type the models ship, and the fused LM-head losses
// (kernels/loss.h). References are double-precision products of the bf16-rounded operands, or,
// for the losses, the fp32 path on operands that bf16 represents exactly. Skipped without AMX-BF16.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/dequantize.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;
using kindred::testing::dequantized_weights;
using kindred::testing::fp32_sum_bound;
using kindred::testing::random_weights;

float bf16_round(float x) { return bf16_to_fp32(fp32_to_bf16(x)); }

// Student rows h [rows x dim] and an output matrix W [vocab x dim] of bf16-representable values.
struct Bf16ExactHead {
    std::vector<float> h, w;
    Bf16ExactHead(std::int64_t rows, std::int64_t dim, std::int64_t vocab, std::uint32_t seed, float w_range)
        : h(random_floats(static_cast<std::size_t>(rows * dim), seed)),
          w(random_floats(static_cast<std::size_t>(vocab * dim), seed + 1, -w_range, w_range)) {
        for (float& v : h) v = bf16_round(v);
        for (float& v : w) v = bf16_round(v);
    }
};

// got[t · n + j] against base + Σ_k bf16(a[t · depth + k]) · bf16(b(k, j)), in double.
template <typename B>
void expect_rounded_product(const std::vector<float>& got, float base, const std::vector<float>& a, std::int64_t tokens,
                            std::int64_t depth, std::int64_t n, B b, const char* what) {
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t j = 0; j < n; ++j) {
            double expected = base, magnitude = 0.0;
            for (std::int64_t k = 0; k < depth; ++k) {
                const double term = static_cast<double>(bf16_round(a[t * depth + k])) * bf16_round(b(k, j));
                expected += term;
                magnitude += std::abs(term);
            }
            ASSERT_NEAR(got[t * n + j], expected, fp32_sum_bound(depth, magnitude)) << what << " t=" << t << " j=" << j;
        }
}

TEST(Bf16Products, ForwardAndBackwardInputOfEveryShippedTypeMatchRoundedOperands) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);  // uneven slices of rows, columns and tokens
    for (DType type : {DType::F32, DType::BF16, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
        const std::int64_t rows = 301, cols = (type == DType::Q4_K || type == DType::Q6_K) ? 512 : 224;
        const auto bytes = random_weights(type, rows, cols, 17);
        const auto w = dequantized_weights(type, bytes, rows, cols);
        const Matrix matrix{type, rows, cols, bytes.data()};
        for (std::int64_t tokens : {4, 37, 150}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(type) << " tokens=" << tokens);
            const auto x = random_floats(static_cast<std::size_t>(tokens * cols), 5);
            std::vector<float> y(static_cast<std::size_t>(tokens * rows));
            matmul_forward(y.data(), x.data(), matrix, nullptr, tokens, Precision::BF16);
            const auto w_t = [&](std::int64_t c, std::int64_t r) { return w[r * cols + c]; };
            ASSERT_NO_FATAL_FAILURE(expect_rounded_product(y, 0.0f, x, tokens, cols, rows, w_t, "y"));
            const auto dy = random_floats(static_cast<std::size_t>(tokens * rows), 6);
            std::vector<float> dx(static_cast<std::size_t>(tokens * cols), 0.25f);  // backward adds
            matmul_backward_input(dx.data(), dy.data(), matrix, tokens, Precision::BF16);
            const auto w_at = [&](std::int64_t r, std::int64_t c) { return w[r * cols + c]; };
            ASSERT_NO_FATAL_FAILURE(expect_rounded_product(dx, 0.25f, dy, tokens, rows, cols, w_at, "dx"));
        }
    }
    set_thread_count(previous);
}

TEST(Bf16Products, EffectivePrecisionFollowsTheCpu) {
    EXPECT_EQ(effective_precision(Precision::F32), Precision::F32);
    EXPECT_EQ(effective_precision(Precision::BF16), cpu::bf16::available() ? Precision::BF16 : Precision::F32);
    EXPECT_STREQ(precision_name(Precision::BF16), "bf16");
    EXPECT_STREQ(precision_name(Precision::F32), "fp32");
}

// h and W hold bf16-representable values, so the bf16 logits are the same exact products as the
// fp32 path's, summed in another order: loss and log-probs agree as two fp32 paths do (the
// fp32 test's tolerances). The gradient pass rounds the coefficients g = grad_scale · weight ·
// (softmax − onehot) to bf16 (8 significant bits: relative error ≤ 2^-8 each), so dh may differ
// from the fp32 path's by 2^-8 · Σ_v |g_v · W_v| plus fp32 noise.
TEST(Bf16Products, FusedCrossEntropyMatchesFp32OnBf16ExactOperands) {
    SKIP_WITHOUT_AMX();
    const std::int64_t tokens = 37, dim = 64, vocab = 1000, chunk = 300;
    const Bf16ExactHead head(tokens, dim, vocab, 21, 0.4f);
    const auto& h = head.h;
    const auto& w = head.w;
    std::vector<std::int32_t> targets(static_cast<std::size_t>(tokens));
    for (std::int64_t t = 0; t < tokens; ++t) targets[t] = static_cast<std::int32_t>((t * 389) % vocab);
    targets[3] = ignore_index;
    const auto weights = random_floats(static_cast<std::size_t>(tokens), 23, 0.5f, 1.5f);
    const float grad_scale = 1.0f / 36.0f;
    const FusedCrossEntropyShape shape{tokens, dim, vocab, chunk};

    auto run = [&](Precision precision, std::vector<float>& dh, std::vector<float>& logprob) {
        WeightRows rows{w.data()};
        rows.precision = precision;
        dh.assign(h.size(), 0.0f);
        logprob.assign(static_cast<std::size_t>(tokens), 0.0f);
        return fused_cross_entropy(dh.data(), logprob.data(), h.data(), rows, targets.data(), weights.data(), shape,
                                   grad_scale);
    };
    std::vector<float> dh32, lp32, dh16, lp16;
    const auto f32 = run(Precision::F32, dh32, lp32);
    const auto b16 = run(Precision::BF16, dh16, lp16);
    EXPECT_NEAR(b16.loss, f32.loss, 1e-5 * f32.loss);
    for (std::int64_t t = 0; t < tokens; ++t) ASSERT_NEAR(lp16[t], lp32[t], 2e-5) << "logprob t=" << t;

    // Σ_v |g_v · W_v| from materialised softmaxes (double).
    for (std::int64_t t = 0; t < tokens; ++t) {
        if (targets[t] == ignore_index) continue;
        std::vector<double> z(static_cast<std::size_t>(vocab));
        double top = -1e30;
        for (std::int64_t v = 0; v < vocab; ++v) {
            double s = 0.0;
            for (std::int64_t k = 0; k < dim; ++k) s += static_cast<double>(h[t * dim + k]) * w[v * dim + k];
            z[v] = s;
            top = std::max(top, s);
        }
        double total = 0.0;
        for (double& v : z) total += v = std::exp(v - top);
        for (std::int64_t k = 0; k < dim; ++k) {
            double magnitude = 0.0;
            for (std::int64_t v = 0; v < vocab; ++v) {
                const double g = grad_scale * weights[t] * (z[v] / total - (v == targets[t] ? 1.0 : 0.0));
                magnitude += std::abs(g * w[v * dim + k]);
            }
            ASSERT_NEAR(dh16[t * dim + k], dh32[t * dim + k], std::ldexp(magnitude, -8) + 1e-7)
                << "dh t=" << t << " k=" << k;
        }
    }
}

// The distillation KL folds 1/τ into the rounding of h; with τ = 2 the scaling is exact, so on
// bf16-exact operands the KL equals the fp32 path's up to summation order (the fp32 test's 1e-5).
TEST(Bf16Products, FusedTopKKlMatchesFp32OnBf16ExactOperands) {
    SKIP_WITHOUT_AMX();
    const std::int64_t rows = 21, dim = 32, vocab = 300, k = 5;
    const Bf16ExactHead student(rows, dim, vocab, 31, 0.5f);
    std::vector<std::int32_t> ids;
    std::vector<float> probs, residual;
    for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < k; ++j) {
            ids.push_back(static_cast<std::int32_t>((r * 7 + j * 31) % vocab));
            probs.push_back(0.1f + 0.02f * static_cast<float>(j));
        }
        residual.push_back(1.0f - (0.5f + 0.02f * 10.0f));
    }
    const TopKTeacher teacher{ids.data(), probs.data(), residual.data(), k};
    WeightRows f32{student.w.data()}, b16{student.w.data()};
    b16.precision = Precision::BF16;
    const FusedCrossEntropyShape shape{rows, dim, vocab, 128};
    const double expected = fused_topk_kl(nullptr, student.h.data(), f32, teacher, shape, 2.0f, 1.0f);
    const double got = fused_topk_kl(nullptr, student.h.data(), b16, teacher, shape, 2.0f, 1.0f);
    EXPECT_NEAR(got, expected, 1e-5 * expected);
}

}  // namespace
}  // namespace kindred::kernels
