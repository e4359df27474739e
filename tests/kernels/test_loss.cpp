// Tests for kernels/loss.h: torch goldens (tests/goldens/train_kernels/loss.json, written by
// tools/goldens/train_kernels.py), the fused cross-entropy against the materialised-logits path,
// and every backward against finite differences (tests/kernels/gradient_check.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "gradient_check.h"
#include "kernel_test_util.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "test_paths.h"

namespace kindred::kernels {
namespace {

using testing::check_gradient;
using testing::GradientCheckOptions;
using testing::random_floats;

nlohmann::json golden(const char* section) {
    std::ifstream in(testing::source_path("tests/goldens/train_kernels/loss.json"));
    return nlohmann::json::parse(in).at(section);
}

std::vector<float> floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

// |a − b| ≤ abs + rel·|b| elementwise, reporting the first offender.
void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, double abs, double rel,
                  const char* what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (std::size_t i = 0; i < actual.size(); ++i)
        ASSERT_NEAR(actual[i], expected[i], abs + rel * std::fabs(expected[i])) << what << " index " << i;
}

// The LM-head case from torch: logits are sums of 24 fp32 products of O(1) values (absolute
// rounding ≈ 24 · 6e-8 · 3 ≈ 5e-6 at worst, far less typically), so per-token log-probs and the
// summed loss carry ~1e-6 absolute error; dh sums 101 fp32 terms of size ≤ |W| ≈ 1.
struct LmHead {
    nlohmann::json j = golden("lm_head");
    std::int64_t tokens = j.at("tokens"), dim = j.at("dim"), vocab = j.at("vocab");
    std::vector<float> h = floats(j.at("h")), w = floats(j.at("w")), weights = floats(j.at("weights"));
    std::vector<std::int32_t> targets = j.at("targets").get<std::vector<std::int32_t>>();
};

TEST(FusedCrossEntropy, MatchesTorchForChunkSizesThatDoNotDivideVocab) {
    const LmHead c;
    for (const std::int64_t chunk : {7, 32, 100, 101, 4096}) {
        SCOPED_TRACE(chunk);
        std::vector<float> dh(c.h.size(), 0.0f), logprob(c.tokens);
        const auto totals = fused_cross_entropy(dh.data(), logprob.data(), c.h.data(), WeightRows{c.w.data()},
                                                c.targets.data(), c.weights.data(),
                                                {c.tokens, c.dim, c.vocab, chunk}, 1.0f);
        EXPECT_NEAR(totals.loss, c.j.at("loss_sum").get<double>(), 2e-5);  // 10 tokens × ~2e-6
        EXPECT_NEAR(totals.weight, c.j.at("weight_sum").get<double>(), 1e-12);  // exact sums of floats
        EXPECT_EQ(totals.counted, 10);
        expect_close(logprob, floats(c.j.at("target_logprob")), 5e-6, 0.0, "target_logprob");
        expect_close(dh, floats(c.j.at("dh")), 5e-6, 1e-5, "dh");
    }
}

TEST(FusedCrossEntropy, RepeatableForAFixedThreadCountAndCloseAcrossThreadCounts) {
    const LmHead c;
    const int previous = thread_pool().size();
    auto run = [&] {
        std::vector<float> dh(c.h.size(), 0.0f);
        fused_cross_entropy(dh.data(), nullptr, c.h.data(), WeightRows{c.w.data()}, c.targets.data(),
                            c.weights.data(), {c.tokens, c.dim, c.vocab, 16}, 1.0f);
        return dh;
    };
    set_thread_count(3);
    const auto first = run();
    const auto second = run();
    set_thread_count(previous);
    EXPECT_EQ(0, std::memcmp(first.data(), second.data(), first.size() * sizeof(float)));
    expect_close(first, floats(c.j.at("dh")), 5e-6, 1e-5, "dh with 3 threads");
}

// The fused path against logits materialised by matmul_forward and the plain cross-entropy, on a
// shape with several thread slices and chunks; both use fp32 logits from sgemm over the same
// products, so agreement is at the level of fp32 summation-order noise.
TEST(FusedCrossEntropy, MatchesMaterialisedLogitsAndQuantizedRows) {
    const std::int64_t tokens = 37, dim = 64, vocab = 1000, chunk = 300;
    const auto h = random_floats(tokens * dim, 11);
    auto w = random_floats(vocab * dim, 12, -0.4f, 0.4f);
    // Round W through fp16 so the same values can be fed as F16 rows (the dequantize path).
    std::vector<std::uint16_t> w16(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
        w16[i] = fp32_to_fp16(w[i]);
        w[i] = fp16_to_fp32(w16[i]);
    }
    std::vector<std::int32_t> targets(tokens);
    for (std::int64_t t = 0; t < tokens; ++t) targets[t] = static_cast<std::int32_t>((t * 389) % vocab);
    targets[0] = targets[5] = targets[36] = ignore_index;
    const auto weights = random_floats(tokens, 13, 0.5f, 1.5f);
    const float grad_scale = 1.0f / 34.0f;

    std::vector<float> logits(tokens * vocab), dlogits(tokens * vocab, 0.0f), logprob_ref(tokens);
    matmul_forward(logits.data(), h.data(), Matrix{DType::F32, vocab, dim, w.data()}, nullptr, tokens);
    const auto ref = softmax_cross_entropy_forward(logprob_ref.data(), logits.data(), targets.data(), weights.data(),
                                                   tokens, vocab);
    softmax_cross_entropy_backward(dlogits.data(), logits.data(), targets.data(), weights.data(), tokens, vocab,
                                   grad_scale);
    std::vector<float> dh_ref(tokens * dim);
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t k = 0; k < dim; ++k) {
            double sum = 0.0;
            for (std::int64_t v = 0; v < vocab; ++v) sum += static_cast<double>(dlogits[t * vocab + v]) * w[v * dim + k];
            dh_ref[t * dim + k] = static_cast<float>(sum);
        }

    const FusedCrossEntropyShape shape{tokens, dim, vocab, chunk};
    std::vector<float> dh(tokens * dim, 0.0f), logprob(tokens);
    const auto fused = fused_cross_entropy(dh.data(), logprob.data(), h.data(), WeightRows{w.data()}, targets.data(),
                                           weights.data(), shape, grad_scale);
    EXPECT_EQ(fused.counted, ref.counted);
    EXPECT_DOUBLE_EQ(fused.weight, ref.weight);
    // 34 tokens, loss ≈ 7 each; fp32 logits in both paths but summed in different orders.
    EXPECT_NEAR(fused.loss, ref.loss, 1e-5 * ref.loss);
    expect_close(logprob, logprob_ref, 2e-5, 0.0, "logprob vs materialised");
    // Gradients are O(grad_scale · |W|) ≈ 1e-2; fp32 softmax terms differ by ~1e-7 relative.
    expect_close(dh, dh_ref, 1e-7, 1e-4, "dh vs materialised");

    // F16 rows through weight_rows (the dequantize callback) hold the very same fp32 values and go
    // through the same sgemm calls, so every bit must agree.
    const Matrix w_f16{DType::F16, vocab, dim, w16.data()};
    std::vector<float> dh16(tokens * dim, 0.0f), logprob16(tokens);
    const auto quantized = fused_cross_entropy(dh16.data(), logprob16.data(), h.data(), weight_rows(w_f16),
                                               targets.data(), weights.data(), shape, grad_scale);
    EXPECT_EQ(quantized.loss, fused.loss);
    EXPECT_EQ(0, std::memcmp(dh16.data(), dh.data(), dh.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(logprob16.data(), logprob.data(), logprob.size() * sizeof(float)));
}

// Finite differences through the fused loss. Gradients are O(1). One input changes one token's
// logits, whose fp32 rounding moves that token's loss by ~1e-7 … 1e-6, i.e. ≲ 5e-5 over 2h = 2e-2;
// log-softmax curvature in h is O(|W|³) ≈ 1, i.e. h²/6 ≈ 2e-5. Measured: max abs error 3.4e-6 at
// h = 1e-2 (2e-5 at h = 3e-2 and 3e-3 — the expected V-shape), so abs 3e-5 + rel 1e-4.
TEST(FusedCrossEntropy, BackwardMatchesFiniteDifferences) {
    const std::int64_t tokens = 5, dim = 8, vocab = 29;
    auto h = random_floats(tokens * dim, 21);
    const auto w = random_floats(vocab * dim, 22);
    const std::vector<std::int32_t> targets{3, ignore_index, 28, 0, 17};
    const auto weights = random_floats(tokens, 23, 0.5f, 2.0f);
    const FusedCrossEntropyShape shape{tokens, dim, vocab, 6};
    const float grad_scale = 0.5f;
    std::vector<float> dh(h.size(), 0.0f);
    fused_cross_entropy(dh.data(), nullptr, h.data(), WeightRows{w.data()}, targets.data(), weights.data(), shape,
                        grad_scale);
    for (std::int64_t k = 0; k < dim; ++k) EXPECT_EQ(dh[1 * dim + k], 0.0f);  // ignored token
    const auto result = check_gradient(h, dh, [&] {
        return grad_scale * fused_cross_entropy(nullptr, nullptr, h.data(), WeightRows{w.data()}, targets.data(),
                                                weights.data(), shape, 1.0f)
                                .loss;
    }, GradientCheckOptions{1e-2, 3e-5, 1e-4});
    EXPECT_TRUE(result.passed()) << result.describe();
}

// The two halves with the weights chosen between them (a preference loss: signed per-token weights
// that depend on pass 1's log-probabilities) compute exactly what one call with those weights
// computes: the same products in the same order, so every bit agrees, in fp32 and on quantized rows.
TEST(FusedCrossEntropy, WeightsChosenAfterTheForwardMatchOneCall) {
    const std::int64_t tokens = 23, dim = 16, vocab = 300;
    const auto h = random_floats(tokens * dim, 31);
    const auto w = random_floats(vocab * dim, 32, -0.4f, 0.4f);
    std::vector<std::int32_t> targets(tokens);
    for (std::int64_t t = 0; t < tokens; ++t) targets[t] = static_cast<std::int32_t>((t * 131) % vocab);
    targets[2] = targets[9] = ignore_index;
    const FusedCrossEntropyShape shape{tokens, dim, vocab, 70};

    FusedCrossEntropy split;
    std::vector<float> logprob(tokens);
    const auto totals = split.forward(logprob.data(), h.data(), WeightRows{w.data()}, targets.data(), nullptr, shape);
    // Weights of both signs from the log-probabilities, as a sequence-level loss would pick them.
    std::vector<float> weights(tokens);
    for (std::int64_t t = 0; t < tokens; ++t) weights[t] = (t % 2 == 0 ? 1.0f : -0.5f) * (1.0f - std::exp(logprob[t]));
    std::vector<float> dh(tokens * dim, 0.0f);
    split.backward(dh.data(), weights.data(), 0.25f);

    std::vector<float> dh_once(tokens * dim, 0.0f), logprob_once(tokens);
    const auto once = fused_cross_entropy(dh_once.data(), logprob_once.data(), h.data(), WeightRows{w.data()},
                                          targets.data(), nullptr, shape, 1.0f);
    EXPECT_EQ(totals.loss, once.loss);
    EXPECT_EQ(0, std::memcmp(logprob.data(), logprob_once.data(), logprob.size() * sizeof(float)));
    std::fill(dh_once.begin(), dh_once.end(), 0.0f);
    fused_cross_entropy(dh_once.data(), nullptr, h.data(), WeightRows{w.data()}, targets.data(), weights.data(), shape,
                        0.25f);
    EXPECT_EQ(0, std::memcmp(dh.data(), dh_once.data(), dh.size() * sizeof(float)));

    FusedCrossEntropy unused;
    EXPECT_THROW(unused.backward(dh.data(), nullptr, 1.0f), Error);
}

TEST(FusedCrossEntropy, AllIgnoredLeavesGradientUntouched) {
    const std::vector<float> h(6, 1.0f), w(12, 0.5f);
    const std::vector<std::int32_t> targets{ignore_index, ignore_index};
    std::vector<float> dh(6, 7.0f), logprob(2, 9.0f);
    const auto totals = fused_cross_entropy(dh.data(), logprob.data(), h.data(), WeightRows{w.data()},
                                            targets.data(), nullptr, {2, 3, 4, 2}, 1.0f);
    EXPECT_EQ(totals.counted, 0);
    EXPECT_EQ(totals.loss, 0.0);
    for (const float v : dh) EXPECT_EQ(v, 7.0f);
    for (const float v : logprob) EXPECT_EQ(v, 0.0f);
}

TEST(FusedCrossEntropy, RejectsBadInput) {
    const std::vector<float> h(6, 1.0f), w(12, 0.5f);
    const std::vector<std::int32_t> bad_target{1, 4};
    EXPECT_THROW(fused_cross_entropy(nullptr, nullptr, h.data(), WeightRows{w.data()}, bad_target.data(), nullptr,
                                     {2, 3, 4, 2}, 1.0f),
                 Error);
    const std::vector<std::int32_t> targets{1, -1};
    EXPECT_THROW(fused_cross_entropy(nullptr, nullptr, h.data(), WeightRows{w.data()}, targets.data(), nullptr,
                                     {2, 3, 4, 2}, 1.0f),
                 Error);
    const std::vector<std::int32_t> good{1, 2};
    EXPECT_THROW(fused_cross_entropy(nullptr, nullptr, h.data(), WeightRows{w.data()}, good.data(), nullptr,
                                     {2, 3, 4, 0}, 1.0f),
                 Error);
    EXPECT_THROW(fused_cross_entropy(nullptr, nullptr, h.data(), WeightRows{}, good.data(), nullptr, {2, 3, 4, 2}, 1.0f),
                 Error);
    EXPECT_THROW(weight_rows(Matrix{DType::I32, 4, 3, w.data()}), Error);
    EXPECT_THROW(weight_rows(Matrix{DType::Q4_0, 4, 3, w.data()}), Error);  // 3 is not whole blocks of 32
    const Matrix wrong_shape{DType::F32, 4, 2, w.data()};
    EXPECT_THROW(fused_cross_entropy(nullptr, nullptr, h.data(), weight_rows(wrong_shape), good.data(), nullptr,
                                     {2, 3, 4, 2}, 1.0f),
                 Error);
}

// torch's mean reduction divides by the counted rows; here that is grad_scale = 1 / counted.
TEST(SoftmaxCrossEntropy, MatchesTorchMean) {
    const auto j = golden("small_head");
    const std::int64_t rows = j.at("rows"), classes = j.at("classes");
    const auto logits = floats(j.at("logits"));
    const auto targets = j.at("targets").get<std::vector<std::int32_t>>();
    const auto totals = softmax_cross_entropy_forward(nullptr, logits.data(), targets.data(), nullptr, rows, classes);
    ASSERT_EQ(totals.counted, 8);
    // Computed in double from the same fp32 logits as torch's float64 reference: rounding only.
    EXPECT_NEAR(totals.loss / static_cast<double>(totals.counted), j.at("mean_loss").get<double>(), 1e-12);
    std::vector<float> dlogits(logits.size(), 0.0f);
    softmax_cross_entropy_backward(dlogits.data(), logits.data(), targets.data(), nullptr, rows, classes,
                                   1.0f / static_cast<float>(totals.counted));
    expect_close(dlogits, floats(j.at("dlogits")), 1e-7, 1e-5, "dlogits");  // fp32 exp: ~1e-7 relative
}

// The forward is double throughout (noise ~1e-15), so only curvature counts: |∂³| of log-softmax
// ≤ 1, h = 1e-3 → h²/6 ≈ 2e-7; the analytic gradient is fp32 (~1e-7 relative).
TEST(SoftmaxCrossEntropy, BackwardMatchesFiniteDifferences) {
    const std::int64_t rows = 4, classes = 7;
    auto logits = random_floats(rows * classes, 31, -3.0f, 3.0f);
    const std::vector<std::int32_t> targets{6, 0, ignore_index, 3};
    const auto weights = random_floats(rows, 32, 0.5f, 2.0f);
    std::vector<float> d(logits.size(), 0.0f);
    softmax_cross_entropy_backward(d.data(), logits.data(), targets.data(), weights.data(), rows, classes, 1.0f);
    const auto result = check_gradient(logits, d, [&] {
        return softmax_cross_entropy_forward(nullptr, logits.data(), targets.data(), weights.data(), rows, classes).loss;
    }, GradientCheckOptions{1e-3, 1e-6, 1e-5});
    EXPECT_TRUE(result.passed()) << result.describe();
}

// batchmean divides by rows; the golden multiplies by τ², so loss_scale = τ² and grad_scale = 1/rows.
TEST(KlDivergence, MatchesTorchWithTemperature) {
    const auto j = golden("kl");
    const std::int64_t rows = j.at("rows"), classes = j.at("classes");
    const float temperature = j.at("temperature"), loss_scale = j.at("loss_scale");
    const auto teacher = floats(j.at("teacher")), student = floats(j.at("student"));
    const double loss = kl_divergence_forward(teacher.data(), student.data(), rows, classes, temperature, loss_scale);
    // Double throughout from the same fp32 logits as torch's float64 reference: rounding only.
    EXPECT_NEAR(loss / static_cast<double>(rows), j.at("batchmean_loss").get<double>(), 1e-12);
    std::vector<float> d(student.size(), 0.0f);
    kl_divergence_backward(d.data(), teacher.data(), student.data(), rows, classes, temperature, loss_scale,
                           1.0f / static_cast<float>(rows));
    expect_close(d, floats(j.at("dstudent")), 1e-7, 1e-5, "dstudent");
    EXPECT_THROW(kl_divergence_forward(teacher.data(), student.data(), rows, classes, 0.0f, 1.0f), Error);
}

// KL is computed in double from fp32 inputs, so evaluation noise is ~1e-15 and only curvature
// (|∂³KL| ≲ loss_scale/τ³ ≤ 3) counts: h = 1e-3 gives ≲ 5e-7; the analytic gradient is rounded
// to fp32 (~1e-7 relative).
TEST(KlDivergence, BackwardMatchesFiniteDifferences) {
    const std::int64_t rows = 3, classes = 9;
    const auto teacher = random_floats(rows * classes, 41, -4.0f, 4.0f);
    auto student = random_floats(rows * classes, 42, -4.0f, 4.0f);
    for (const float temperature : {1.0f, 2.5f}) {
        std::vector<float> d(student.size(), 0.0f);
        kl_divergence_backward(d.data(), teacher.data(), student.data(), rows, classes, temperature, 3.0f, 1.0f);
        const auto result = check_gradient(student, d, [&] {
            return kl_divergence_forward(teacher.data(), student.data(), rows, classes, temperature, 3.0f);
        }, GradientCheckOptions{1e-3, 1e-6, 1e-5});
        EXPECT_TRUE(result.passed()) << "τ " << temperature << ": " << result.describe();
    }
}

TEST(KlDivergence, MaskedTeacherClassesContributeNothing) {
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> teacher{1.0f, -inf, 0.5f}, student{0.2f, 3.0f, -1.0f};
    // With class 1 masked, p_T lives on classes 0 and 2; p_S still normalises over all three.
    const double masked = kl_divergence_forward(teacher.data(), student.data(), 1, 3, 1.0f, 1.0f);
    const double lse_s3 = std::log(std::exp(0.2) + std::exp(3.0) + std::exp(-1.0));
    const double lse_t = std::log(std::exp(1.0) + std::exp(0.5));
    const double expected = std::exp(1.0 - lse_t) * ((1.0 - lse_t) - (0.2 - lse_s3)) +
                            std::exp(0.5 - lse_t) * ((0.5 - lse_t) - (-1.0 - lse_s3));
    EXPECT_NEAR(masked, expected, 1e-6);  // the inputs are fp32 roundings of these decimals
}

TEST(Mse, MatchesTorchMeanAndFiniteDifferences) {
    const auto j = golden("mse");
    const std::int64_t n = j.at("n");
    auto prediction = floats(j.at("prediction"));
    const auto target = floats(j.at("target"));
    // Differences and squares in double from fp32 inputs: exact to double rounding.
    EXPECT_NEAR(mse_forward(prediction.data(), target.data(), n) / static_cast<double>(n),
                j.at("mean_loss").get<double>(), 1e-12);
    std::vector<float> d(prediction.size(), 0.0f);
    mse_backward(d.data(), prediction.data(), target.data(), n, 1.0f / static_cast<float>(n));
    expect_close(d, floats(j.at("dprediction")), 0.0, 1e-6, "dprediction");  // a few fp32 roundings
    // Quadratic: central differences are exact up to rounding of the perturbation (~1e-7 relative).
    std::vector<float> d_sum(prediction.size(), 0.0f);
    mse_backward(d_sum.data(), prediction.data(), target.data(), n, 1.0f);
    const auto result = check_gradient(prediction, d_sum, [&] { return mse_forward(prediction.data(), target.data(), n); },
                                       GradientCheckOptions{1e-2, 1e-5, 1e-5});
    EXPECT_TRUE(result.passed()) << result.describe();
}

}  // namespace
}  // namespace kindred::kernels

namespace kindred::kernels {
namespace {

// ---- sigmoid (binary) cross-entropy, the multi-label emotion head's loss ----

nlohmann::json bce_golden() {
    std::ifstream in(testing::source_path("tests/goldens/emotion_head/bce.json"));
    return nlohmann::json::parse(in).at("cases");
}

// torch's BCEWithLogitsLoss in float64 on the same float32 inputs (tools/goldens/emotion_head.py).
// The forward is double throughout: 35 softplus terms of O(1..40) agree to ~1e-14 relative, so
// 1e-12 relative is asserted. The gradient is computed in double and rounded once to fp32
// (relative 6e-8), plus one fp32 rounding of the accumulated value: 2e-7 relative + 1e-9 abs.
TEST(SigmoidCrossEntropy, MatchesTorchBceWithLogits) {
    for (const auto& c : bce_golden()) {
        const auto rows = c["rows"].get<std::int64_t>(), classes = c["classes"].get<std::int64_t>();
        const auto logits = c["logits"].get<std::vector<float>>();
        const auto targets = c["targets"].get<std::vector<float>>();
        const std::vector<float> pos_weight = c["pos_weight"].is_null() ? std::vector<float>{} : c["pos_weight"].get<std::vector<float>>();
        const float* pw = pos_weight.empty() ? nullptr : pos_weight.data();
        const double expected = c["loss"].get<double>();
        EXPECT_NEAR(sigmoid_cross_entropy_forward(logits.data(), targets.data(), pw, rows, classes), expected,
                    1e-12 * std::fabs(expected));
        std::vector<float> d(logits.size(), 0.0f);
        sigmoid_cross_entropy_backward(d.data(), logits.data(), targets.data(), pw, rows, classes, 1.0f);
        const auto golden_d = c["dlogits"].get<std::vector<std::vector<double>>>();
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t k = 0; k < classes; ++k) {
                const double want = golden_d[static_cast<std::size_t>(r)][static_cast<std::size_t>(k)];
                EXPECT_NEAR(d[static_cast<std::size_t>(r * classes + k)], want, 1e-9 + 2e-7 * std::fabs(want)) << r << "," << k;
            }
    }
}

// Forward in double: noise ~1e-15 · 30 terms; softplus'' ≤ ¼, so with h = 1e-3 the central
// difference's truncation error is ≲ h²/6 · |softplus'''| ≈ 2e-8 per entry; the analytic
// gradient is fp32 (~1e-7 relative). Hence abs 1e-6 + rel 1e-5.
TEST(SigmoidCrossEntropy, BackwardMatchesFiniteDifferences) {
    const std::int64_t rows = 3, classes = 5;
    auto logits = random_floats(rows * classes, 61, -4.0f, 4.0f);
    auto targets = random_floats(rows * classes, 62, 0.0f, 1.0f);
    const auto pos_weight = random_floats(classes, 63, 0.5f, 3.0f);
    std::vector<float> d(logits.size(), 0.0f);
    sigmoid_cross_entropy_backward(d.data(), logits.data(), targets.data(), pos_weight.data(), rows, classes, 1.0f);
    const auto result = check_gradient(logits, d, [&] {
        return sigmoid_cross_entropy_forward(logits.data(), targets.data(), pos_weight.data(), rows, classes);
    }, GradientCheckOptions{1e-3, 1e-6, 1e-5});
    EXPECT_TRUE(result.passed()) << result.describe();
}

TEST(SigmoidCrossEntropy, RejectsBadInput) {
    const std::vector<float> logits{0, 1}, targets{0, 1}, outside{0, 1.5f}, bad_weight{1, 0};
    std::vector<float> d(2, 0.0f);
    EXPECT_THROW(sigmoid_cross_entropy_forward(logits.data(), outside.data(), nullptr, 1, 2), Error);
    EXPECT_THROW(sigmoid_cross_entropy_backward(d.data(), logits.data(), outside.data(), nullptr, 1, 2, 1.0f), Error);
    EXPECT_THROW(sigmoid_cross_entropy_forward(logits.data(), targets.data(), bad_weight.data(), 1, 2), Error);
    EXPECT_THROW(sigmoid_cross_entropy_forward(logits.data(), targets.data(), nullptr, 1, 0), Error);
    // Saturated logits stay finite: softplus(±100) is evaluated without overflow.
    const std::vector<float> saturated{100.0f, -100.0f}, wrong{0.0f, 1.0f};
    EXPECT_NEAR(sigmoid_cross_entropy_forward(saturated.data(), wrong.data(), nullptr, 1, 2), 200.0, 1e-9);
}

}  // namespace
}  // namespace kindred::kernels
