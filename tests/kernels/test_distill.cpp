// Tests for the soft-label cross-entropy and the fused top-k distillation KL of kernels/loss.h:
// cases worked out by hand, agreement with the materialised kl_divergence_* when k = vocab,
// a direct double-precision evaluation of the bucket formula, and finite differences
// (tests/kernels/gradient_check.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "gradient_check.h"
#include "kernel_test_util.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"

namespace kindred::kernels {
namespace {

using testing::check_gradient;
using testing::GradientCheckOptions;
using testing::random_floats;

// Softmax of z/τ in double.
std::vector<double> softmax(const float* z, std::int64_t n, double temperature) {
    const double top = *std::max_element(z, z + n);
    std::vector<double> p(static_cast<std::size_t>(n));
    double sum = 0.0;
    for (std::int64_t v = 0; v < n; ++v) sum += p[static_cast<std::size_t>(v)] = std::exp((z[v] - top) / temperature);
    for (double& x : p) x /= sum;
    return p;
}

// ---- soft cross-entropy ----

TEST(SoftCrossEntropy, HandComputedRows) {
    const float ln3 = std::log(3.0f);
    // Row 0: uniform logits over 4 classes (softmax 1/4 each), target (½, ½, 0, 0):
    //   loss = −½ ln ¼ − ½ ln ¼ = ln 4;  grad = softmax·1 − t = (−¼, −¼, ¼, ¼).
    // Row 1: logits (0, ln 3, ·, ·) masked to two live classes by −30 (softmax ≈ (¼, ¾) up to e⁻³⁰),
    //   target (½, ½): loss = ½ ln 4 + ½ ln(4/3) = ½ ln(16/3);  grad = (¼ − ½, ¾ − ½) = (−¼, ¼).
    // Row 2: target mass 2 on uniform logits, (1, 1, 0, 0): loss = 2 ln 4; grad = ¼·2 − t = (−½, −½, ½, ½).
    // Row 3: all-zero target — an unlabelled row: no loss, no gradient.
    const std::vector<float> logits{0, 0, 0, 0, 0, ln3, -30, -30, 0, 0, 0, 0, 5, -2, 1, 0};
    const std::vector<float> target{0.5f, 0.5f, 0, 0, 0.5f, 0.5f, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0};
    const double expected = std::log(4.0) + 0.5 * std::log(16.0 / 3.0) + 2.0 * std::log(4.0);
    // ln 3 rounded to fp32 moves row 1 by ≤ ¾·6e-8; e⁻³⁰ terms add ≈ 2e-13; the rest is exact.
    EXPECT_NEAR(soft_cross_entropy_forward(logits.data(), target.data(), 4, 4), expected, 1e-7);
    std::vector<float> d(16, 0.0f);
    soft_cross_entropy_backward(d.data(), logits.data(), target.data(), 4, 4, 2.0f);  // grad_scale 2
    const std::vector<float> hand{-0.5f, -0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0, 0, -1, -1, 1, 1, 0, 0, 0, 0};
    for (std::size_t i = 0; i < d.size(); ++i) EXPECT_NEAR(d[i], hand[i], 1e-7) << i;  // same fp32 rounding
}

TEST(SoftCrossEntropy, OneHotEqualsHardCrossEntropy) {
    const std::int64_t rows = 6, classes = 11;
    const auto logits = random_floats(rows * classes, 51, -4.0f, 4.0f);
    std::vector<std::int32_t> labels(rows);
    std::vector<float> target(rows * classes, 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
        labels[r] = static_cast<std::int32_t>((r * 7 + 3) % classes);
        target[r * classes + labels[r]] = 1.0f;
    }
    const auto hard = softmax_cross_entropy_forward(nullptr, logits.data(), labels.data(), nullptr, rows, classes);
    // Both in double from the same logits; only summation order differs.
    EXPECT_NEAR(soft_cross_entropy_forward(logits.data(), target.data(), rows, classes), hard.loss, 1e-12);
    std::vector<float> d_soft(logits.size(), 0.0f), d_hard(logits.size(), 0.0f);
    soft_cross_entropy_backward(d_soft.data(), logits.data(), target.data(), rows, classes, 0.25f);
    softmax_cross_entropy_backward(d_hard.data(), logits.data(), labels.data(), nullptr, rows, classes, 0.25f);
    // The hard path takes its softmax in fp32 (a few ulps, ≈ 2.5e-7 relative at most), the soft one
    // in double and rounds once.
    for (std::size_t i = 0; i < d_soft.size(); ++i)
        EXPECT_NEAR(d_soft[i], d_hard[i], 1e-9 + 2.5e-7 * std::fabs(d_hard[i])) << i;
}

// The forward is double throughout (noise ~1e-15), so only curvature counts: |∂³| of log-softmax
// times the target mass (≤ 1.5 here) with h = 1e-3 gives ≲ 3e-7; the analytic gradient is fp32
// (~1e-7 relative). Hence abs 1e-6 + rel 1e-5, as for the hard cross-entropy.
TEST(SoftCrossEntropy, BackwardMatchesFiniteDifferences) {
    const std::int64_t rows = 4, classes = 7;
    auto logits = random_floats(rows * classes, 52, -3.0f, 3.0f);
    auto target = random_floats(rows * classes, 53, 0.0f, 0.4f);
    std::fill(target.begin() + 2 * classes, target.begin() + 3 * classes, 0.0f);  // an unlabelled row
    std::vector<float> d(logits.size(), 0.0f);
    soft_cross_entropy_backward(d.data(), logits.data(), target.data(), rows, classes, 1.0f);
    for (std::int64_t c = 0; c < classes; ++c) EXPECT_EQ(d[2 * classes + c], 0.0f);
    const auto result = check_gradient(logits, d, [&] {
        return soft_cross_entropy_forward(logits.data(), target.data(), rows, classes);
    }, GradientCheckOptions{1e-3, 1e-6, 1e-5});
    EXPECT_TRUE(result.passed()) << result.describe();
}

TEST(SoftCrossEntropy, RejectsBadInput) {
    const std::vector<float> logits{0, 1}, negative{-0.5f, 1.5f};
    EXPECT_THROW(soft_cross_entropy_forward(logits.data(), negative.data(), 1, 2), Error);
    std::vector<float> d(2, 0.0f);
    EXPECT_THROW(soft_cross_entropy_backward(d.data(), logits.data(), negative.data(), 1, 2, 1.0f), Error);
    EXPECT_THROW(soft_cross_entropy_forward(logits.data(), logits.data(), 1, 0), Error);
}

// ---- fused top-k KL ----

// Student logits z = h · Wᵀ built to given values: dim 2, h = (1, 0), W[:, 0] = z, W[:, 1] free
// (it does not touch the logits but makes dh[1] = Σ_v dz_v · W[v, 1] observable).
struct HandStudent {
    std::vector<float> h{1.0f, 0.0f};
    std::vector<float> w;
    HandStudent(const std::vector<float>& z, const std::vector<float>& column) {
        for (std::size_t v = 0; v < z.size(); ++v) {
            w.push_back(z[v]);
            w.push_back(column[v]);
        }
    }
};

TEST(FusedTopKKl, HandComputedUniformStudent) {
    // Student logits 0 → s = ¼ each at any τ. Teacher k = 2: ids (2, 0), probs (½, ¼), residual ¼.
    //   KL = ½ ln(½/¼) + ¼ ln(¼/¼) + ¼ ln(¼ / (1 − ½)) = ½ ln 2 − ¼ ln 2 = ¼ ln 2.
    // dKL/dz_v = (1/τ)(s_v(Σp + r) − q_v), q = (¼, r·s/(1−S) = ⅛, ½, ⅛) → (0, ⅛, −¼, ⅛)/τ;
    // dh[1] = Σ dz_v W[v,1] with W[:,1] = (1, 2, 4, 8): (0 + ¼ − 1 + 1)/τ = ¼/τ; dh[0] = Σ dz_v · 0 = 0.
    const HandStudent s({0, 0, 0, 0}, {1, 2, 4, 8});
    const std::vector<std::int32_t> ids{2, 0};
    const std::vector<float> probs{0.5f, 0.25f}, residual{0.25f};
    const TopKTeacher teacher{ids.data(), probs.data(), residual.data(), 2};
    for (const float tau : {1.0f, 2.0f}) {
        SCOPED_TRACE(tau);
        std::vector<float> dh(2, 0.0f);
        const double kl =
            fused_topk_kl(dh.data(), s.h.data(), WeightRows{s.w.data()}, teacher, {1, 2, 4, 3}, tau, 1.0f);
        // Every quantity is a power of two except the logs, evaluated in double: rounding only.
        EXPECT_NEAR(kl, 0.25 * std::log(2.0), 1e-12);
        EXPECT_NEAR(dh[0], 0.0f, 1e-7);
        EXPECT_NEAR(dh[1], 0.25f / tau, 1e-7);
    }
}

TEST(FusedTopKKl, HandComputedResidualBucket) {
    // Student logits (ln 5, ln 2, ln 2, 0) at τ = 1 → s = (0.5, 0.2, 0.2, 0.1). Teacher k = 1: id 0
    // with p = 0.7, residual 0.3. The KL compares the coarsened pairs (0.7, 0.3) and (0.5, 0.5):
    //   KL = 0.7 ln(0.7/0.5) + 0.3 ln(0.3/0.5) = 0.0822828785050518.
    // Gradient: q = (0.7, 0.3·0.2/0.5, 0.12, 0.06), dz = s − q = (−0.2, 0.08, 0.08, 0.04);
    //   dh[0] = Σ dz_v z_v = −0.2 ln 5 + 0.16 ln 2;  dh[1] = dz_0 = −0.2 (W[:,1] = (1, 0, 0, 0)).
    const std::vector<float> z{std::log(5.0f), std::log(2.0f), std::log(2.0f), 0.0f};
    const HandStudent s(z, {1, 0, 0, 0});
    const std::vector<std::int32_t> ids{0};
    const std::vector<float> probs{0.7f}, residual{0.3f};
    std::vector<float> dh(2, 0.0f);
    const TopKTeacher teacher{ids.data(), probs.data(), residual.data(), 1};
    const double kl =
        fused_topk_kl(dh.data(), s.h.data(), WeightRows{s.w.data()}, teacher, {1, 2, 4, 2}, 1.0f, 1.0f);
    // The fp32 roundings of ln 5, ln 2, 0.7 and 0.3 (≤ 6e-8 relative) move the KL by ≲ 1e-7.
    EXPECT_NEAR(kl, 0.0822828785050518, 2e-7);
    EXPECT_NEAR(dh[0], -0.2 * std::log(5.0) + 0.16 * std::log(2.0), 2e-7);
    EXPECT_NEAR(dh[1], -0.2, 2e-7);
}

// Random student (h, W), teacher probabilities and the KL's terms evaluated directly in double
// from materialised logits, for the bucket formula on random data.
double direct_topk_kl(const std::vector<float>& logits, std::int64_t rows, std::int64_t vocab,
                      const std::vector<std::int32_t>& ids, const std::vector<float>& probs,
                      const std::vector<float>& residual, std::int64_t k, double tau) {
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
        const auto s = softmax(logits.data() + r * vocab, vocab, tau);
        double kept = 0.0;
        for (std::int64_t j = 0; j < k; ++j) {
            const double p = probs[r * k + j], sj = s[ids[r * k + j]];
            kept += sj;
            if (p > 0) total += p * std::log(p / sj);
        }
        if (residual[r] > 0) total += residual[r] * std::log(residual[r] / (1.0 - kept));
    }
    return total;
}

// A random teacher: row r's k distinct ids in a scrambled order with probabilities from a random
// softmax (so ids are not sorted and probabilities are not ranked), residual = the rest.
struct RandomTeacher {
    std::vector<std::int32_t> ids;
    std::vector<float> probs, residual;
    RandomTeacher(std::int64_t rows, std::int64_t vocab, std::int64_t k, std::uint32_t seed) {
        std::mt19937 rng(seed);
        const auto logits = random_floats(rows * vocab, seed + 1, -3.0f, 3.0f);
        for (std::int64_t r = 0; r < rows; ++r) {
            std::vector<std::int32_t> all(static_cast<std::size_t>(vocab));
            std::iota(all.begin(), all.end(), 0);
            std::shuffle(all.begin(), all.end(), rng);
            const auto p = softmax(logits.data() + r * vocab, vocab, 1.0);
            double kept = 0.0;
            for (std::int64_t j = 0; j < k; ++j) {
                ids.push_back(all[static_cast<std::size_t>(j)]);
                probs.push_back(static_cast<float>(p[static_cast<std::size_t>(all[static_cast<std::size_t>(j)])]));
                kept += probs.back();
            }
            residual.push_back(static_cast<float>(std::max(0.0, 1.0 - kept)));
        }
    }
    TopKTeacher view(std::int64_t k) const { return {ids.data(), probs.data(), residual.data(), k}; }
};

TEST(FusedTopKKl, MatchesDirectBucketFormulaAcrossChunksAndThreads) {
    const std::int64_t rows = 37, dim = 24, vocab = 301, k = 13;
    const float tau = 2.0f;
    const auto h = random_floats(rows * dim, 61);
    auto w = random_floats(vocab * dim, 62, -0.5f, 0.5f);
    std::vector<std::uint16_t> w16(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {  // fp16-representable, so F16 rows give the same values
        w16[i] = fp32_to_fp16(w[i]);
        w[i] = fp16_to_fp32(w16[i]);
    }
    const RandomTeacher teacher(rows, vocab, k, 63);
    std::vector<float> logits(rows * vocab);
    matmul_forward(logits.data(), h.data(), Matrix{DType::F32, vocab, dim, w.data()}, nullptr, rows);
    const double direct = direct_topk_kl(logits, rows, vocab, teacher.ids, teacher.probs, teacher.residual, k, tau);
    const int previous = thread_pool().size();
    for (const int threads : {1, 3}) {
        set_thread_count(threads);
        for (const std::int64_t chunk : {7, 64, 301, 4096}) {
            SCOPED_TRACE(fmt::format("threads {} chunk {}", threads, chunk));
            const double fused = fused_topk_kl(nullptr, h.data(), WeightRows{w.data()}, teacher.view(k),
                                               {rows, dim, vocab, chunk}, tau, 1.0f);
            // 37 rows of KL ≈ 0.5: logits differ between the two paths by fp32 summation order
            // (~1e-7 relative) and the tail sums use fp32 exponentials (~2 ulp): ~1e-6 relative.
            EXPECT_NEAR(fused, direct, 1e-5 * direct);
        }
    }
    set_thread_count(previous);
    // F16 rows through the dequantize callback hold the same fp32 values: bit-identical results.
    const FusedCrossEntropyShape shape{rows, dim, vocab, 64};
    std::vector<float> dh(h.size(), 0.0f), dh16(h.size(), 0.0f);
    const double a = fused_topk_kl(dh.data(), h.data(), WeightRows{w.data()}, teacher.view(k), shape, tau, 0.5f);
    const Matrix w_f16{DType::F16, vocab, dim, w16.data()};
    const double b = fused_topk_kl(dh16.data(), h.data(), weight_rows(w_f16), teacher.view(k), shape, tau, 0.5f);
    EXPECT_EQ(a, b);
    EXPECT_EQ(0, std::memcmp(dh.data(), dh16.data(), dh.size() * sizeof(float)));
}

// k = vocab with residual 0 is the full KL: compare with kl_divergence_forward/backward on logits
// materialised by matmul_forward (loss_scale 1, plain KL), and dh with dstudent · W.
TEST(FusedTopKKl, FullVocabularyEqualsKlDivergence) {
    const std::int64_t rows = 9, dim = 16, vocab = 50;
    const float tau = 2.0f, grad_scale = 1.0f / 9.0f;
    const auto h = random_floats(rows * dim, 71);
    const auto w = random_floats(vocab * dim, 72, -0.6f, 0.6f);
    const auto teacher_logits = random_floats(rows * vocab, 73, -4.0f, 4.0f);
    std::vector<std::int32_t> ids;
    std::vector<float> probs, residual(rows, 0.0f);
    std::mt19937 rng(74);
    for (std::int64_t r = 0; r < rows; ++r) {
        const auto p = softmax(teacher_logits.data() + r * vocab, vocab, tau);
        std::vector<std::int32_t> order(vocab);
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        for (const std::int32_t id : order) {
            ids.push_back(id);
            probs.push_back(static_cast<float>(p[static_cast<std::size_t>(id)]));
        }
    }
    std::vector<float> student(rows * vocab), dstudent(rows * vocab, 0.0f);
    matmul_forward(student.data(), h.data(), Matrix{DType::F32, vocab, dim, w.data()}, nullptr, rows);
    const double reference = kl_divergence_forward(teacher_logits.data(), student.data(), rows, vocab, tau, 1.0f);
    kl_divergence_backward(dstudent.data(), teacher_logits.data(), student.data(), rows, vocab, tau, 1.0f, grad_scale);
    std::vector<float> dh_ref(rows * dim);
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < dim; ++c) {
            double sum = 0.0;
            for (std::int64_t v = 0; v < vocab; ++v)
                sum += static_cast<double>(dstudent[r * vocab + v]) * w[v * dim + c];
            dh_ref[r * dim + c] = static_cast<float>(sum);
        }
    std::vector<float> dh(rows * dim, 0.0f);
    const double fused = fused_topk_kl(dh.data(), h.data(), WeightRows{w.data()},
                                       TopKTeacher{ids.data(), probs.data(), residual.data(), vocab},
                                       {rows, dim, vocab, 16}, tau, grad_scale);
    // The teacher's probabilities are fp32 roundings here (≤ 6e-8 relative each) and the student's
    // logits are scaled by 1/τ inside sgemm instead of in double: ~1e-7 of each KL term's size.
    EXPECT_NEAR(fused, reference, 1e-6 + 1e-5 * reference);
    // Gradients ≈ grad_scale · |s − p| · |W| / τ ≈ 1e-2; the same ~1e-7 relative roundings.
    for (std::size_t i = 0; i < dh.size(); ++i) EXPECT_NEAR(dh[i], dh_ref[i], 1e-7 + 1e-4 * std::fabs(dh_ref[i])) << i;
}

// Teacher = student: with k = vocab (residual 0) and with k < vocab (residual = the student's own
// tail mass) the coarsened distributions are equal, so KL = 0 and the gradient vanishes.
TEST(FusedTopKKl, ZeroWhenTeacherEqualsStudent) {
    const std::int64_t rows = 4, dim = 12, vocab = 40;
    const float tau = 2.0f;
    const auto h = random_floats(rows * dim, 81);
    const auto w = random_floats(vocab * dim, 82, -0.8f, 0.8f);
    std::vector<float> logits(rows * vocab);
    matmul_forward(logits.data(), h.data(), Matrix{DType::F32, vocab, dim, w.data()}, nullptr, rows);
    for (const std::int64_t k : {vocab, std::int64_t{5}}) {
        SCOPED_TRACE(k);
        std::vector<std::int32_t> ids;
        std::vector<float> probs, residual;
        for (std::int64_t r = 0; r < rows; ++r) {
            const auto s = softmax(logits.data() + r * vocab, vocab, tau);
            double kept = 0.0;
            for (std::int64_t j = 0; j < k; ++j) {
                const auto id = static_cast<std::int32_t>((j * 17 + r) % vocab);  // any distinct ids
                ids.push_back(id);
                probs.push_back(static_cast<float>(s[static_cast<std::size_t>(id)]));
                kept += s[static_cast<std::size_t>(id)];
            }
            residual.push_back(k == vocab ? 0.0f : static_cast<float>(1.0 - kept));
        }
        std::vector<float> dh(rows * dim, 0.0f);
        const double kl = fused_topk_kl(dh.data(), h.data(), WeightRows{w.data()},
                                        TopKTeacher{ids.data(), probs.data(), residual.data(), k},
                                        {rows, dim, vocab, 16}, tau, 1.0f);
        // The teacher is the student rounded to fp32: p = s(1 + δ), |δ| ≲ 6e-8 (and sgemm's logits
        // differ from matmul_forward's by ~1e-7, which moves s but keeps it normalised). Then
        // Σ p log(p/s) = Σ s·δ + O(δ²) = (Σ p − 1) + O(δ²): the only first-order term is how far the
        // rounded teacher's mass is from 1, which is computed here exactly; the rest is ~1e-14.
        double mass_error = 0.0;
        for (std::int64_t r = 0; r < rows; ++r) {
            double mass = residual[static_cast<std::size_t>(r)];
            for (std::int64_t j = 0; j < k; ++j) mass += probs[static_cast<std::size_t>(r * k + j)];
            mass_error += mass - 1.0;
        }
        EXPECT_NEAR(kl, mass_error, 1e-12);
        EXPECT_LT(std::fabs(kl), 1e-7);
        // First order in δ: |s·(Σp + r − 1) + s − p| · |W| / τ ≲ 1e-7 · dim.
        for (const float g : dh) EXPECT_NEAR(g, 0.0f, 1e-6);
    }
}

// Finite differences through the fused KL w.r.t. h, k < vocab with a residual, several chunks.
// Each evaluation takes fp32 logits (sgemm) and fp32 tail exponentials; one input moves one row,
// whose KL (≈ 0.3) carries rounding ≈ 1e-7 relative, i.e. ≈ 3e-8 / 2h = 1.5e-6 at h = 1e-2;
// curvature in h is O(|W|³/τ³) ≲ 1, i.e. h²/6 ≈ 2e-5 at worst. Measured max abs error: 8.4e-7
// (τ = 1), 1.3e-7 (τ = 2). Hence abs 1e-5 + rel 1e-4.
TEST(FusedTopKKl, BackwardMatchesFiniteDifferences) {
    const std::int64_t rows = 5, dim = 8, vocab = 29, k = 6;
    for (const float tau : {1.0f, 2.0f}) {
        SCOPED_TRACE(tau);
        auto h = random_floats(rows * dim, 91);
        const auto w = random_floats(vocab * dim, 92);
        const RandomTeacher teacher(rows, vocab, k, 93);
        const FusedCrossEntropyShape shape{rows, dim, vocab, 6};
        const float grad_scale = 0.5f;
        std::vector<float> dh(h.size(), 0.0f);
        fused_topk_kl(dh.data(), h.data(), WeightRows{w.data()}, teacher.view(k), shape, tau, grad_scale);
        const auto result = check_gradient(h, dh, [&] {
            return grad_scale *
                   fused_topk_kl(nullptr, h.data(), WeightRows{w.data()}, teacher.view(k), shape, tau, 1.0f);
        }, GradientCheckOptions{1e-2, 1e-5, 1e-4});
        EXPECT_TRUE(result.passed()) << result.describe();
    }
}

// An all-zero teacher row (padding) adds neither loss nor gradient; the other row is unaffected.
TEST(FusedTopKKl, ZeroTeacherRowContributesNothing) {
    const std::int64_t dim = 4, vocab = 9, k = 3;
    const auto h = random_floats(2 * dim, 95);
    const auto w = random_floats(vocab * dim, 96);
    const std::vector<std::int32_t> ids{4, 0, 7, 1, 2, 3};
    const std::vector<float> probs{0.3f, 0.2f, 0.1f, 0, 0, 0}, residual{0.4f, 0};
    std::vector<float> dh(2 * dim, 0.0f), dh_first(dim, 0.0f);
    const double both = fused_topk_kl(dh.data(), h.data(), WeightRows{w.data()},
                                      TopKTeacher{ids.data(), probs.data(), residual.data(), k}, {2, dim, vocab, 4},
                                      1.5f, 1.0f);
    const double first = fused_topk_kl(dh_first.data(), h.data(), WeightRows{w.data()},
                                       TopKTeacher{ids.data(), probs.data(), residual.data(), k}, {1, dim, vocab, 4},
                                       1.5f, 1.0f);
    EXPECT_EQ(both, first);
    for (std::int64_t c = 0; c < dim; ++c) {
        EXPECT_EQ(dh[static_cast<std::size_t>(c)], dh_first[static_cast<std::size_t>(c)]);
        EXPECT_EQ(dh[static_cast<std::size_t>(dim + c)], 0.0f);
    }
}

TEST(FusedTopKKl, RejectsBadInput) {
    const std::vector<float> h(6, 1.0f), w(12, 0.5f), probs{0.5f, 0.2f, 0.4f, 0.1f}, residual{0.3f, 0.5f};
    const std::vector<std::int32_t> ids{0, 1, 2, 3}, out_of_range{0, 4, 1, 2}, repeated{1, 1, 0, 2};
    const FusedCrossEntropyShape shape{2, 3, 4, 2};
    const WeightRows rows{w.data()};
    auto run = [&](const std::int32_t* i, const float* p, const float* r, std::int64_t k, float tau) {
        return fused_topk_kl(nullptr, h.data(), rows, TopKTeacher{i, p, r, k}, shape, tau, 1.0f);
    };
    EXPECT_NO_THROW(run(ids.data(), probs.data(), residual.data(), 2, 1.0f));
    EXPECT_THROW(run(ids.data(), probs.data(), residual.data(), 2, 0.0f), Error);
    EXPECT_THROW(run(ids.data(), probs.data(), residual.data(), 2, -1.0f), Error);
    EXPECT_THROW(run(ids.data(), probs.data(), residual.data(), 0, 1.0f), Error);
    EXPECT_THROW(run(ids.data(), probs.data(), residual.data(), 5, 1.0f), Error);
    EXPECT_THROW(run(out_of_range.data(), probs.data(), residual.data(), 2, 1.0f), Error);
    EXPECT_THROW(run(repeated.data(), probs.data(), residual.data(), 2, 1.0f), Error);
    const std::vector<float> negative{0.5f, -0.2f, 0.4f, 0.1f}, bad_residual{-0.1f, 0.5f};
    EXPECT_THROW(run(ids.data(), negative.data(), residual.data(), 2, 1.0f), Error);
    EXPECT_THROW(run(ids.data(), probs.data(), bad_residual.data(), 2, 1.0f), Error);
    EXPECT_THROW(run(nullptr, probs.data(), residual.data(), 2, 1.0f), Error);
    const TopKTeacher good{ids.data(), probs.data(), residual.data(), 2};
    EXPECT_THROW(fused_topk_kl(nullptr, h.data(), WeightRows{}, good, shape, 1.0f, 1.0f), Error);
}

}  // namespace
}  // namespace kindred::kernels
