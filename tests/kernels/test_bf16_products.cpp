// Tests for Precision::BF16 (kernels/matmul.h) where the kernels use it: matmul_forward and
// matmul_backward_input for every weight type the models ship, LoRA (kernels/lora.h), and the
// fused LM-head losses (kernels/loss.h). References are double-precision products of the
// bf16-rounded operands, or, for the losses, the fp32 path on operands that bf16 represents
// exactly. Skipped without AMX-BF16. (Attention's bf16 products: test_attention_bf16.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/dequantize.h"
#include "kernels/lora.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;
using kindred::testing::dequantized_weights;
using kindred::testing::fp32_sum_bound;
using kindred::testing::random_weights;

float bf16_round(float x) { return bf16_to_fp32(fp32_to_bf16(x)); }
using cpu::bf16::round_up;

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

// Random weights of `type` as a Matrix without (plain) and with (packed_view) their bf16 packings.
struct PackedWeights {
    std::vector<std::uint8_t> bytes;
    Matrix plain;
    PackedBf16 packed;
    Matrix packed_view;
    PackedWeights(DType type, std::int64_t rows, std::int64_t cols, std::uint32_t seed)
        : bytes(random_weights(type, rows, cols, seed)), plain{type, rows, cols, bytes.data()},
          packed(pack_bf16(plain)), packed_view(plain) {
        packed_view.packed = &packed;
    }
    PackedWeights(const PackedWeights&) = delete;
};

// pack_bf16's packings stand in for the per-product dequantize-and-pack bit for bit, forward and
// backward, on uneven thread slices and shapes that are not whole tiles.
TEST(Bf16Products, PackedWeightsGiveTheSameBitsAsPackingPerProduct) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);
    for (DType type : {DType::F32, DType::Q4_1, DType::Q8_0, DType::Q4_K}) {
        const std::int64_t rows = 301, cols = type == DType::Q4_K ? 512 : 224;
        const PackedWeights weights(type, rows, cols, 19);
        const Matrix& plain = weights.plain;
        const Matrix& with_packing = weights.packed_view;
        EXPECT_EQ(packed_bf16_bytes(plain), 2 * (round_up(cols, 32) * round_up(rows, 16) +
                                                 round_up(rows, 32) * round_up(cols, 16)));
        for (std::int64_t tokens : {4, 37, 150}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(type) << " tokens=" << tokens);
            const auto x = random_floats(static_cast<std::size_t>(tokens * cols), 7);
            std::vector<float> y(static_cast<std::size_t>(tokens * rows)), y_packed(y.size());
            matmul_forward(y.data(), x.data(), plain, nullptr, tokens, Precision::BF16);
            matmul_forward(y_packed.data(), x.data(), with_packing, nullptr, tokens, Precision::BF16);
            EXPECT_EQ(y, y_packed);
            const auto dy = random_floats(static_cast<std::size_t>(tokens * rows), 8);
            std::vector<float> dx(static_cast<std::size_t>(tokens * cols), 0.25f), dx_packed(dx);
            matmul_backward_input(dx.data(), dy.data(), plain, tokens, Precision::BF16);
            matmul_backward_input(dx_packed.data(), dy.data(), with_packing, tokens, Precision::BF16);
            EXPECT_EQ(dx, dx_packed);
        }
    }
    set_thread_count(previous);
}

// The fused frozen product and adapter term give the bits of matmul_forward then lora_forward:
// with and without dropout (u = x or not), with packed and unpacked weights, on uneven thread
// slices, at token counts that take the fused path and one that does not.
TEST(Bf16Products, LinearWithLoraForwardGivesTheBitsOfTheTwoCalls) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);
    const std::int64_t out = 301, in = 224, rank = 16;
    const PackedWeights weights(DType::Q4_1, out, in, 23);
    const auto a = random_floats(static_cast<std::size_t>(rank * in), 24, -0.3f, 0.3f);
    const auto b = random_floats(static_cast<std::size_t>(out * rank), 25, -0.3f, 0.3f);
    for (const Matrix* w : {&weights.plain, &weights.packed_view})
        for (std::int64_t tokens : {2, 4, 37, 150})
            for (bool dropout : {false, true}) {
                SCOPED_TRACE(::testing::Message() << "packed=" << (w->packed != nullptr) << " tokens=" << tokens
                                                  << " dropout=" << dropout);
                const auto x = random_floats(static_cast<std::size_t>(tokens * in), 26);
                const auto dropped = random_floats(x.size(), 27);
                const float* u = dropout ? dropped.data() : x.data();
                const LoraShape shape{tokens, in, out, rank, 2.0f, Precision::BF16};
                std::vector<float> y(static_cast<std::size_t>(tokens * out)), xa(static_cast<std::size_t>(tokens * rank));
                matmul_forward(y.data(), x.data(), *w, nullptr, tokens, Precision::BF16);
                lora_forward(y.data(), xa.data(), u, a.data(), b.data(), shape);
                std::vector<float> y_fused(y.size(), -1.0f), xa_fused(xa.size(), -1.0f);
                linear_with_lora_forward(y_fused.data(), xa_fused.data(), x.data(), u, *w, nullptr, a.data(), b.data(),
                                         shape);
                EXPECT_EQ(y, y_fused);
                EXPECT_EQ(xa, xa_fused);
            }
    set_thread_count(previous);
}

// The fused input gradient gives the bits of matmul_backward_input then lora_backward (du = dx),
// with packed and unpacked weights (whose panels split the contraction), on uneven slices.
TEST(Bf16Products, LinearWithLoraBackwardGivesTheBitsOfTheTwoCalls) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);
    const std::int64_t out = 1100, in = 768, rank = 16;  // 3 threads: 256-column chunks, 2 panels of rows
    const PackedWeights weights(DType::Q8_0, out, in, 31);
    const auto a = random_floats(static_cast<std::size_t>(rank * in), 32, -0.3f, 0.3f);
    const auto b = random_floats(static_cast<std::size_t>(out * rank), 33, -0.3f, 0.3f);
    for (const Matrix* w : {&weights.plain, &weights.packed_view})
        for (std::int64_t tokens : {1, 37, 150}) {
            SCOPED_TRACE(::testing::Message() << "packed=" << (w->packed != nullptr) << " tokens=" << tokens);
            const auto x = random_floats(static_cast<std::size_t>(tokens * in), 34);
            const auto xa = random_floats(static_cast<std::size_t>(tokens * rank), 35);
            const auto dy = random_floats(static_cast<std::size_t>(tokens * out), 36);
            const LoraShape shape{tokens, in, out, rank, 2.0f, Precision::BF16};
            std::vector<float> dx(static_cast<std::size_t>(tokens * in), 0.25f), da(a.size(), -0.25f),
                db(b.size(), 0.125f);
            matmul_backward_input(dx.data(), dy.data(), *w, tokens, Precision::BF16);
            lora_backward(dx.data(), da.data(), db.data(), dy.data(), x.data(), xa.data(), a.data(), b.data(), shape);
            std::vector<float> dx_fused(dx.size(), 0.25f), da_fused(a.size(), -0.25f), db_fused(b.size(), 0.125f);
            linear_with_lora_backward(dx_fused.data(), da_fused.data(), db_fused.data(), dy.data(), x.data(), xa.data(),
                                      *w, a.data(), b.data(), shape);
            EXPECT_EQ(dx, dx_fused);
            EXPECT_EQ(da, da_fused);
            EXPECT_EQ(db, db_fused);
        }
    set_thread_count(previous);
}

// LoRA in bf16. Where the kernel's operand is observable (u, A, B, dy, and xa, which the forward
// returns) the reference multiplies its rounded values and the bound is Bf16Gemm's
// fp32_sum_bound. dxa = dy · scale·B is internal and rounded again for du and dA: there the bound
// adds bf16's rounding of each dxa (2^-8 of it) and the fp32 error it carries in (its own
// fp32_sum_bound), as the fused cross-entropy's test bounds its rounded coefficients.
void expect_lora_bf16(std::int64_t tokens, std::int64_t in, std::int64_t out, std::int64_t rank, float scale) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << tokens << " in=" << in << " out=" << out << " rank=" << rank);
    const auto u = random_floats(static_cast<std::size_t>(tokens * in), 81);
    const auto a = random_floats(static_cast<std::size_t>(rank * in), 82, -0.3f, 0.3f);
    const auto b = random_floats(static_cast<std::size_t>(out * rank), 83, -0.3f, 0.3f);
    const auto dy = random_floats(static_cast<std::size_t>(tokens * out), 84);
    const LoraShape shape{tokens, in, out, rank, scale, Precision::BF16};
    std::vector<float> y(static_cast<std::size_t>(tokens * out), 0.5f), xa(static_cast<std::size_t>(tokens * rank));
    std::vector<float> du(u.size(), 0.25f), da(a.size(), -0.25f), db(b.size(), 0.125f);  // the backward adds
    lora_forward(y.data(), xa.data(), u.data(), a.data(), b.data(), shape);
    lora_backward(du.data(), da.data(), db.data(), dy.data(), u.data(), xa.data(), a.data(), b.data(), shape);
    const auto r = [](float x) { return static_cast<double>(bf16_round(x)); };
    const auto scaled = [&](float x) { return r(scale * x); };  // the kernel rounds scale · x
    const double u16 = std::ldexp(1.0, -8);
    // got[i · cols + j] = start + Σ_k term(i, j, k) within the fp32 bound of its n (+ 1 for a
    // non-zero start) terms.
    const auto expect_sums = [](const std::vector<float>& got, std::int64_t rows, std::int64_t cols, std::int64_t n,
                                double start, const auto& term, const char* what) {
        for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t j = 0; j < cols; ++j) {
                double want = start, magnitude = std::abs(start);
                for (std::int64_t k = 0; k < n; ++k) {
                    want += term(i, j, k);
                    magnitude += std::abs(term(i, j, k));
                }
                ASSERT_NEAR(got[i * cols + j], want, fp32_sum_bound(n + (start != 0.0), magnitude))
                    << what << " " << i << "," << j;
            }
    };
    ASSERT_NO_FATAL_FAILURE(expect_sums(xa, tokens, rank, in, 0.0,
                                        [&](auto t, auto j, auto k) { return r(u[t * in + k]) * r(a[j * in + k]); }, "xa"));
    ASSERT_NO_FATAL_FAILURE(expect_sums(y, tokens, out, rank, 0.5, [&](auto t, auto o, auto j) {
        return scaled(xa[t * rank + j]) * r(b[o * rank + j]);
    }, "y"));
    ASSERT_NO_FATAL_FAILURE(expect_sums(db, out, rank, tokens, 0.125, [&](auto o, auto j, auto t) {
        return r(dy[t * out + o]) * scaled(xa[t * rank + j]);
    }, "db"));
    // dxa and the bound on the kernel's fp32 dxa.
    std::vector<double> dxa(static_cast<std::size_t>(tokens * rank)), dxa_error(dxa.size());
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t j = 0; j < rank; ++j) {
            double sum = 0.0, magnitude = 0.0;
            for (std::int64_t o = 0; o < out; ++o) {
                sum += r(dy[t * out + o]) * scaled(b[o * rank + j]);
                magnitude += std::abs(r(dy[t * out + o]) * scaled(b[o * rank + j]));
            }
            dxa[t * rank + j] = sum;
            dxa_error[t * rank + j] = fp32_sum_bound(out, magnitude);
        }
    // A term bf16(dxa) · x: its value, and its share of the bound beyond the fp32 sum's.
    const auto rounded_term = [&](std::int64_t i, double x, double& budget) {
        budget += (u16 * std::abs(dxa[i]) + (1.0 + u16) * dxa_error[i]) * std::abs(x);
        return dxa[i] * x;
    };
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t k = 0; k < in; ++k) {
            double want = 0.25, budget = 0.0, magnitude = 0.25;
            for (std::int64_t j = 0; j < rank; ++j) {
                const double term = rounded_term(t * rank + j, r(a[j * in + k]), budget);
                want += term;
                magnitude += std::abs(term);
            }
            ASSERT_NEAR(du[t * in + k], want, budget + fp32_sum_bound(rank + 1, magnitude)) << "du t=" << t << " k=" << k;
        }
    for (std::int64_t j = 0; j < rank; ++j)
        for (std::int64_t k = 0; k < in; ++k) {
            double want = -0.25, budget = 0.0, magnitude = 0.25;
            for (std::int64_t t = 0; t < tokens; ++t) {
                const double term = rounded_term(t * rank + j, r(u[t * in + k]), budget);
                want += term;
                magnitude += std::abs(term);
            }
            ASSERT_NEAR(da[j * in + k], want, budget + fp32_sum_bound(tokens + 1, magnitude)) << "da j=" << j << " k=" << k;
        }

    // Slices never split a sum and AMX sums each element in one order: the same bits on one thread.
    const int threads = thread_pool().size();
    set_thread_count(1);
    std::vector<float> y1(y.size(), 0.5f), xa1(xa.size()), du1(du.size(), 0.25f), da1(da.size(), -0.25f),
        db1(db.size(), 0.125f);
    lora_forward(y1.data(), xa1.data(), u.data(), a.data(), b.data(), shape);
    lora_backward(du1.data(), da1.data(), db1.data(), dy.data(), u.data(), xa1.data(), a.data(), b.data(), shape);
    set_thread_count(threads);
    EXPECT_EQ(y1, y);
    EXPECT_EQ(xa1, xa);
    EXPECT_EQ(du1, du);
    EXPECT_EQ(da1, da);
    EXPECT_EQ(db1, db);
}

TEST(Bf16Products, LoraMatchesTheRoundedOperands) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);  // uneven slices of tokens, dB's rows and dA's columns
    // Ragged: tokens, in and out off every tile and chunk size; a rank below one tile and one of
    // 16; PEFT's scale 2 and one that rounding the scaled operand cannot keep exact.
    expect_lora_bf16(150, 200, 72, 12, 2.0f);
    expect_lora_bf16(70, 96, 300, 16, 0.7f);
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

// The loss's walks over the vocabulary give the same bits from the caller's packings of the
// output matrix as from packing each chunk: chunks of whole 32-row blocks (several, the last one
// ragged) take theirs out of the packings, a chunk size that is not whole blocks packs its own.
TEST(Bf16Products, FusedCrossEntropyGivesTheSameBitsFromPackedWeights) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);
    const std::int64_t tokens = 37, dim = 64, vocab = 1000;
    const PackedWeights table(DType::Q8_0, vocab, dim, 41);
    const auto h = random_floats(static_cast<std::size_t>(tokens * dim), 42);
    std::vector<std::int32_t> targets(static_cast<std::size_t>(tokens));
    for (std::int64_t t = 0; t < tokens; ++t) targets[t] = static_cast<std::int32_t>((t * 389) % vocab);
    for (std::int64_t chunk : {256, 300}) {
        SCOPED_TRACE(::testing::Message() << "chunk=" << chunk);
        const FusedCrossEntropyShape shape{tokens, dim, vocab, chunk};
        auto run = [&](const Matrix& w, std::vector<float>& dh) {
            WeightRows rows = weight_rows(w);
            rows.precision = Precision::BF16;
            dh.assign(h.size(), 0.0f);
            return fused_cross_entropy(dh.data(), nullptr, h.data(), rows, targets.data(), nullptr, shape, 0.5f);
        };
        std::vector<float> dh, dh_packed;
        const auto totals = run(table.plain, dh);
        const auto totals_packed = run(table.packed_view, dh_packed);
        EXPECT_EQ(totals.loss, totals_packed.loss);
        EXPECT_EQ(dh, dh_packed);
    }
    set_thread_count(previous);
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
