// Finite-difference checks of the hand-written backward passes of matmul, RMSNorm, RoPE,
// attention, gated activations and softmax (gradient_check.h's central differences in double
// around fp32 inputs). Every loss is L = Σ out · r with fixed random r, so d L / d out = r is the
// upstream gradient handed to the backward pass.
//
// Tolerances (per component: |numeric − analytic| ≤ abs + rel·|analytic|): with step h = 1e-2 the
// central difference errs by the truncation term h²·|L'''|/6 (≤ ~2e-5 · |L'''| for these smooth
// ops with O(1) inputs) plus fp32 forward noise ε_L / (2h), where ε_L ≈ 2^-24 · Σ|out·r| ≈ 1e-6 for
// the sizes here, i.e. ~5e-5. Measured worst cases are 4.8e-5 (all ops), so abs 2e-4 plus rel 1e-3
// for the nonlinear ops and rel 1e-4 for the ones linear in the checked input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "gradient_check.h"
#include "kernel_test_util.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/dequantize.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kernels/softmax.h"

namespace kindred::kernels {
namespace {

using kindred::testing::check_gradient;
using kindred::testing::GradientCheckOptions;
using kindred::testing::random_floats;
using kindred::testing::random_weights;

constexpr GradientCheckOptions nonlinear{1e-2, 2e-4, 1e-3};
// Linear in the checked input: only forward noise remains.
constexpr GradientCheckOptions linear{1e-2, 2e-4, 1e-4};

double weighted_sum(const std::vector<float>& out, const std::vector<float>& r) {
    double total = 0.0;
    for (std::size_t i = 0; i < out.size(); ++i) total += static_cast<double>(out[i]) * r[i];
    return total;
}

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }

TEST(MatmulBackward, InputGradientOfFp32WeightMatchesFiniteDifferences) {
    const std::int64_t tokens = 6, rows = 20, cols = 37;
    auto x = random_floats(size(tokens * cols), 1);
    const auto w = random_floats(size(rows * cols), 2);
    const auto bias = random_floats(size(rows), 3);
    const auto r = random_floats(size(tokens * rows), 4);
    const Matrix matrix{DType::F32, rows, cols, w.data()};
    std::vector<float> dx(x.size(), 0.0f);
    matmul_backward_input(dx.data(), r.data(), matrix, tokens);
    std::vector<float> y(r.size());
    const auto result = check_gradient(x, dx, [&] {
        matmul_forward(y.data(), x.data(), matrix, bias.data(), tokens);
        return weighted_sum(y, r);
    }, linear);
    EXPECT_TRUE(result.passed()) << result.describe();
}

// Quantized weights: dx must equal dy · dequantize(W) for every type; the reference is that
// product in double. Tolerance as test_matmul's: reordered fp32 sums of K = rows terms err by
// ~√K · 2^-24 typically, so 2e-5 of Σ|dy·w| leaves a wide margin.
TEST(MatmulBackward, InputGradientOfEveryWeightTypeMatchesDequantizedProduct) {
    // 150 tokens on a 64-column matrix (one column chunk) also split tokens over threads.
    // NF4 (QLoRA's frozen base): 640 columns over 45 rows make two nested groups, split inside a row.
    for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q4_K,
                       DType::Q6_K, DType::MXFP4, DType::NF4}) {
        const bool k_quant = type == DType::Q4_K || type == DType::Q6_K;  // 256-element blocks
        const std::int64_t rows = 45;
        for (std::int64_t tokens : {2, 13, 150}) {
            const std::int64_t cols = k_quant ? 512 : (tokens == 150 ? 64 : type == DType::NF4 ? 640 : 320);
            SCOPED_TRACE(::testing::Message() << dtype_name(type) << " tokens=" << tokens);
            const auto bytes = random_weights(type, rows, cols, static_cast<std::uint32_t>(cols + tokens));
            const std::vector<float> w = kindred::testing::dequantized_weights(type, bytes, rows, cols);
            const auto dy = random_floats(size(tokens * rows), 7);
            auto dx = random_floats(size(tokens * cols), 8);  // the backward adds to what is there
            const auto before = dx;
            matmul_backward_input(dx.data(), dy.data(), Matrix{type, rows, cols, bytes.data()}, tokens);
            for (std::int64_t t = 0; t < tokens; ++t)
                for (std::int64_t c = 0; c < cols; ++c) {
                    double expected = before[size(t * cols + c)], magnitude = 0.0;
                    for (std::int64_t i = 0; i < rows; ++i) {
                        const double term = static_cast<double>(dy[size(t * rows + i)]) * w[size(i * cols + c)];
                        expected += term;
                        magnitude += std::abs(term);
                    }
                    ASSERT_NEAR(dx[size(t * cols + c)], expected, 2e-5 * magnitude + 1e-6) << "t=" << t << " c=" << c;
                }
        }
    }
}

TEST(MatmulBackward, WeightAndBiasGradientsMatchFiniteDifferences) {
    const std::int64_t tokens = 5, rows = 19, cols = 23;
    const auto x = random_floats(size(tokens * cols), 11);
    auto w = random_floats(size(rows * cols), 12);
    auto bias = random_floats(size(rows), 13);
    const auto r = random_floats(size(tokens * rows), 14);
    std::vector<float> dw(w.size(), 0.0f), dbias(bias.size(), 0.0f), y(r.size());
    matmul_backward_weight(dw.data(), dbias.data(), r.data(), x.data(), rows, cols, tokens);
    auto loss = [&] {
        matmul_forward(y.data(), x.data(), Matrix{DType::F32, rows, cols, w.data()}, bias.data(), tokens);
        return weighted_sum(y, r);
    };
    const auto dw_result = check_gradient(w, dw, loss, linear);
    EXPECT_TRUE(dw_result.passed()) << dw_result.describe();
    const auto db_result = check_gradient(bias, dbias, loss, linear);
    EXPECT_TRUE(db_result.passed()) << db_result.describe();
}

void check_rmsnorm(bool weight_offset) {
    SCOPED_TRACE(weight_offset ? "1 + w" : "w");
    const std::int64_t rows = 4, dim = 24;
    auto x = random_floats(size(rows * dim), 21, -2.0f, 2.0f);
    auto w = random_floats(size(dim), 22, 0.5f, 1.5f);
    const auto r = random_floats(size(rows * dim), 23);
    std::vector<float> y(x.size()), rstd(size(rows)), dx(x.size(), 0.0f), dw(w.size(), 0.0f);
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, dim, 1e-5f, weight_offset);
    rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), rstd.data(), w.data(), rows, dim, weight_offset);
    auto loss = [&] {
        rmsnorm_forward(y.data(), nullptr, x.data(), w.data(), rows, dim, 1e-5f, weight_offset);
        return weighted_sum(y, r);
    };
    const auto dx_result = check_gradient(x, dx, loss, nonlinear);
    EXPECT_TRUE(dx_result.passed()) << dx_result.describe();
    const auto dw_result = check_gradient(w, dw, loss, linear);
    EXPECT_TRUE(dw_result.passed()) << dw_result.describe();
    // dw is optional: skipping it leaves dx identical.
    std::vector<float> dx_only(x.size(), 0.0f);
    rmsnorm_backward(dx_only.data(), nullptr, r.data(), x.data(), rstd.data(), w.data(), rows, dim, weight_offset);
    EXPECT_EQ(dx_only, dx);
}

TEST(RmsNormBackward, MatchesFiniteDifferences) {
    check_rmsnorm(false);
    check_rmsnorm(true);
}

TEST(RopeBackward, BothPairingsWithScaledTablesMatchFiniteDifferences) {
    const std::int64_t tokens = 5, heads = 3, head_dim = 12, rotary_dim = 8;
    std::vector<float> inv_freq(size(rotary_dim / 2)), cos(size(tokens * rotary_dim / 2)), sin(cos.size());
    rope_inverse_frequencies(inv_freq.data(), rotary_dim, 10000.0);
    // Partial rotary dims, a first position past 0 and an attention factor (YaRN's) all at once.
    rope_table(cos.data(), sin.data(), inv_freq.data(), rotary_dim, 3, tokens, 1.2f);
    for (RopePairing pairing : {RopePairing::Half, RopePairing::Adjacent}) {
        auto x = random_floats(size(tokens * heads * head_dim), 31);
        const auto r = random_floats(x.size(), 32);
        auto dx = r;
        rope_backward(dx.data(), cos.data(), sin.data(), tokens, heads, head_dim, rotary_dim, pairing);
        std::vector<float> y(x.size());
        const auto result = check_gradient(x, dx, [&] {
            y = x;
            rope_forward(y.data(), cos.data(), sin.data(), tokens, heads, head_dim, rotary_dim, pairing);
            return weighted_sum(y, r);
        }, linear);
        EXPECT_TRUE(result.passed()) << result.describe();
    }
}

struct AttentionCase {
    std::int64_t tokens, past, heads, kv_heads, window;
    std::vector<std::int32_t> segments;  // empty = one document
    bool sinks = false;
};

void check_attention(const AttentionCase& c) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << c.tokens << " past=" << c.past << " heads=" << c.heads << "/"
                                      << c.kv_heads << " window=" << c.window << " segments=" << c.segments.size()
                                      << " sinks=" << c.sinks);
    const std::int64_t head_dim = 8, positions = c.past + c.tokens;
    AttentionShape shape;
    shape.tokens = c.tokens;
    shape.past = c.past;
    shape.heads = c.heads;
    shape.kv_heads = c.kv_heads;
    shape.head_dim = head_dim;
    shape.kv_head_stride = positions * head_dim;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    shape.window = c.window;
    shape.segment_ids = c.segments.empty() ? nullptr : c.segments.data();
    // Sinks around the scores' size, so that they take a sizeable share of every row's mass.
    const auto sinks = random_floats(size(c.heads), 45, -1.0f, 2.0f);
    shape.sinks = c.sinks ? sinks.data() : nullptr;
    auto q = random_floats(size(c.tokens * c.heads * head_dim), 41, -2.0f, 2.0f);
    auto k = random_floats(size(c.kv_heads * positions * head_dim), 42, -2.0f, 2.0f);
    auto v = random_floats(k.size(), 43);
    const auto r = random_floats(q.size(), 44);
    std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f), out(q.size());
    attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), shape);
    auto loss = [&] {
        attention_forward(out.data(), q.data(), k.data(), v.data(), shape);
        return weighted_sum(out, r);
    };
    const auto dq_result = check_gradient(q, dq, loss, nonlinear);
    EXPECT_TRUE(dq_result.passed()) << "dq " << dq_result.describe();
    const auto dk_result = check_gradient(k, dk, loss, nonlinear);
    EXPECT_TRUE(dk_result.passed()) << "dk " << dk_result.describe();
    const auto dv_result = check_gradient(v, dv, loss, linear);
    EXPECT_TRUE(dv_result.passed()) << "dv " << dv_result.describe();
}

TEST(AttentionBackward, CausalGqaWithThreeQueryHeadsPerKvHead) { check_attention({6, 0, 6, 2, 0, {}}); }
// From 8 tokens on the forward takes its sgemm path; the backward is the same for both.
TEST(AttentionBackward, SlidingWindowOnTheBlockedForward) { check_attention({11, 0, 3, 1, 4, {}}); }
TEST(AttentionBackward, PackedSegmentsDoNotAttendAcrossDocuments) {
    check_attention({12, 0, 6, 2, 0, {0, 0, 0, 1, 1, 1, 1, 1, 4, 4, 5, 5}});
    check_attention({12, 0, 6, 2, 3, {0, 0, 0, 1, 1, 1, 1, 1, 4, 4, 5, 5}});
}
TEST(AttentionBackward, QueriesAfterCachedPositions) { check_attention({5, 4, 3, 1, 0, {}}); }
// gpt-oss: sinks with a sliding window, packed documents and cached positions.
TEST(AttentionBackward, SinkLogitsMatchFiniteDifferences) {
    check_attention({6, 0, 4, 2, 0, {}, true});
    check_attention({11, 0, 3, 1, 4, {}, true});
    check_attention({12, 0, 6, 2, 3, {0, 0, 0, 1, 1, 1, 1, 1, 4, 4, 5, 5}, true});
    check_attention({5, 4, 3, 1, 0, {}, true});
}

// Query blocks of 64: 150 tokens span three blocks spread over threads, whose partial dk/dv sums
// are then added up; segments and the window cut blocks mid-way. Checked against a
// double-precision reference (finite differences over ~20k inputs would take too long).
TEST(AttentionBackward, ManyTokensAcrossBlocksMatchDoubleReference) {
    const std::int64_t tokens = 150, heads = 4, kv_heads = 2, head_dim = 16, group = heads / kv_heads;
    std::vector<std::int32_t> segments(size(tokens));
    for (std::int64_t t = 0; t < tokens; ++t) segments[size(t)] = t < 70 ? 0 : (t < 131 ? 1 : 2);
    AttentionShape shape;
    shape.tokens = tokens;
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.kv_head_stride = tokens * head_dim;
    shape.scale = 0.25f;
    shape.window = 90;
    shape.segment_ids = segments.data();
    const auto q = random_floats(size(tokens * heads * head_dim), 51, -2.0f, 2.0f);
    const auto k = random_floats(size(kv_heads * tokens * head_dim), 52, -2.0f, 2.0f);
    const auto v = random_floats(k.size(), 53);
    const auto dout = random_floats(q.size(), 54);
    std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), shape);

    std::vector<double> edq(q.size(), 0.0), edk(k.size(), 0.0), edv(v.size(), 0.0);
    for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t t = 0; t < tokens; ++t) {
            const std::int64_t g = h / group;
            std::int64_t first = std::max<std::int64_t>(0, t - shape.window + 1);
            while (segments[size(first)] != segments[size(t)]) ++first;
            const std::size_t row = size((t * heads + h) * head_dim);
            const auto qi = [&](std::int64_t i) { return static_cast<double>(q[row + size(i)]); };
            const auto kv = [&](std::int64_t p, std::int64_t i) { return size((g * tokens + p) * head_dim + i); };
            const auto doi = [&](std::int64_t i) { return static_cast<double>(dout[row + size(i)]); };
            std::vector<double> p(size(t + 1), 0.0), dp(size(t + 1), 0.0);
            double max_score = -1e300, sum = 0.0, dot = 0.0;
            for (std::int64_t j = first; j <= t; ++j) {
                for (std::int64_t i = 0; i < head_dim; ++i) p[size(j)] += qi(i) * k[kv(j, i)] * shape.scale;
                max_score = std::max(max_score, p[size(j)]);
            }
            for (std::int64_t j = first; j <= t; ++j) sum += (p[size(j)] = std::exp(p[size(j)] - max_score));
            for (std::int64_t j = first; j <= t; ++j) {
                p[size(j)] /= sum;
                for (std::int64_t i = 0; i < head_dim; ++i) dp[size(j)] += doi(i) * v[kv(j, i)];
                dot += p[size(j)] * dp[size(j)];
            }
            for (std::int64_t j = first; j <= t; ++j) {
                const double ds = p[size(j)] * (dp[size(j)] - dot) * shape.scale;
                for (std::int64_t i = 0; i < head_dim; ++i) {
                    edq[row + size(i)] += ds * k[kv(j, i)];
                    edk[kv(j, i)] += ds * qi(i);
                    edv[kv(j, i)] += p[size(j)] * doi(i);
                }
            }
        }
    // Gradients are sums of up to 2 heads x 90 queries of O(1) terms from fp32 sgemm and exp
    // (relative error ~1e-6 each); 1e-4 absolute is ~10x the accumulated rounding.
    for (std::size_t i = 0; i < dq.size(); ++i) ASSERT_NEAR(dq[i], edq[i], 1e-4) << "dq " << i;
    for (std::size_t i = 0; i < dk.size(); ++i) ASSERT_NEAR(dk[i], edk[i], 1e-4) << "dk " << i;
    for (std::size_t i = 0; i < dv.size(); ++i) ASSERT_NEAR(dv[i], edv[i], 1e-4) << "dv " << i;
}

TEST(AttentionBackward, RejectsDecreasingSegments) {
    const std::vector<float> q(16), k(16), v(16);
    std::vector<float> dq(16), dk(16), dv(16), out(16);
    AttentionShape shape;
    shape.tokens = 2;
    shape.heads = 2;
    shape.kv_heads = 1;
    shape.head_dim = 4;
    shape.kv_head_stride = 8;
    const std::int32_t decreasing[] = {1, 0};
    shape.segment_ids = decreasing;
    EXPECT_THROW(attention_forward(out.data(), q.data(), k.data(), v.data(), shape), Error);
    EXPECT_THROW(attention_backward(dq.data(), dk.data(), dv.data(), out.data(), q.data(), k.data(), v.data(), shape),
                 Error);
}

TEST(GatedActivationBackward, SiluAndGeluTanhMatchFiniteDifferences) {
    // 37 elements: the AVX2 loop and its scalar tail both run.
    const std::int64_t n = 37;
    for (GateActivation act : {GateActivation::Silu, GateActivation::GeluTanh}) {
        SCOPED_TRACE(act == GateActivation::Silu ? "silu" : "gelu_tanh");
        auto gate = random_floats(size(n), 61, -4.0f, 4.0f);
        auto up = random_floats(size(n), 62, -2.0f, 2.0f);
        const auto r = random_floats(size(n), 63);
        std::vector<float> dgate(size(n), 0.0f), dup(size(n), 0.0f), out(size(n));
        gated_activation_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, act);
        auto loss = [&] {
            gated_activation_forward(out.data(), gate.data(), up.data(), n, act);
            return weighted_sum(out, r);
        };
        const auto gate_result = check_gradient(gate, dgate, loss, nonlinear);
        EXPECT_TRUE(gate_result.passed()) << gate_result.describe();
        const auto up_result = check_gradient(up, dup, loss, linear);
        EXPECT_TRUE(up_result.passed()) << up_result.describe();
    }
}

// Inputs span [-10, 10], so both clamps cut some elements (gradient 0 there); none lies within
// 0.3 of ±7, where a central difference of step up to 0.07 would straddle a kink. Each element
// only moves its own output, so the noise is one output's fp32 rounding (≤ 2^-19 for |out| ≤ 56)
// twice over 2h ≥ 0.02: ≤ 2e-4; truncation h²·|f‴|/6 stays below 1e-4 (σ(1.702 g) saturates
// where h is large). Hence abs 4e-4, rel 1e-3.
TEST(ClampedSwigluBackward, MatchesFiniteDifferencesInsideAndOutsideTheClamps) {
    const std::int64_t n = 64;
    const ClampedSwiglu params;
    auto away_from_kinks = [&](std::vector<float> values) {
        for (auto& v : values)
            if (std::abs(std::abs(v) - params.limit) < 0.3f) v += v > 0 ? 0.6f : -0.6f;
        return values;
    };
    auto gate = away_from_kinks(random_floats(size(n), 65, -10.0f, 10.0f));
    auto up = away_from_kinks(random_floats(size(n), 66, -10.0f, 10.0f));
    const auto r = random_floats(size(n), 67);
    std::vector<float> dgate(size(n), 0.0f), dup(size(n), 0.0f), out(size(n));
    clamped_swiglu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, params);
    auto loss = [&] {
        clamped_swiglu_forward(out.data(), gate.data(), up.data(), n, params);
        return weighted_sum(out, r);
    };
    constexpr GradientCheckOptions clamped{1e-2, 4e-4, 1e-3};
    const auto gate_result = check_gradient(gate, dgate, loss, clamped);
    EXPECT_TRUE(gate_result.passed()) << gate_result.describe();
    const auto up_result = check_gradient(up, dup, loss, clamped);
    EXPECT_TRUE(up_result.passed()) << up_result.describe();
    // The clamps really cut: some gradients are exactly zero.
    EXPECT_GT(std::count(dgate.begin(), dgate.end(), 0.0f), 0);
    EXPECT_GT(std::count(dup.begin(), dup.end(), 0.0f), 0);
}

TEST(SoftmaxBackward, MatchesFiniteDifferences) {
    const std::int64_t n = 29;
    for (float temperature : {1.0f, 0.7f}) {
        auto logits = random_floats(size(n), 71, -3.0f, 3.0f);
        const auto r = random_floats(size(n), 72);
        std::vector<float> probs(size(n)), dlogits(size(n), 0.0f);
        softmax_forward(probs.data(), logits.data(), n, temperature);
        softmax_backward(dlogits.data(), r.data(), probs.data(), n, temperature);
        const auto result = check_gradient(logits, dlogits, [&] {
            softmax_forward(probs.data(), logits.data(), n, temperature);
            return weighted_sum(probs, r);
        }, nonlinear);
        EXPECT_TRUE(result.passed()) << "temperature " << temperature << ": " << result.describe();
    }
}

}  // namespace
}  // namespace kindred::kernels
