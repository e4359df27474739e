// Tests for kernels/moe.h: grouped products against a dequantized double reference for every
// weight type (decode and prefill paths), with the slices of unchosen experts unreadable; top-k
// order and ties; the errors. Whole MoE blocks (routing, products, LoRA, combine and their
// backward) against transformers + PEFT and finite differences: tests/model/test_moe_mlp.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"

namespace kindred::kernels {
namespace {

using testing::random_floats;
using testing::random_weights;

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }

// Grouped products against each expert's dequantized matrix in double, every type the experts of
// released models come in, for decode (1 token), the mat-vec path (3) and panels (40); experts
// nobody chose have no slice at all (null), so reading one would crash.
TEST(ExpertMatmul, EveryWeightTypeForwardAndInputGradientTouchOnlyChosenExperts) {
    // NF4, a stack quantized at load: 832 columns make each expert two nested groups split in a row.
    for (DType type : {DType::F32, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::MXFP4, DType::NF4}) {
        const std::int64_t experts = 6, top_k = 2, rows = 20;
        const std::int64_t cols = type == DType::Q4_K ? 256 : type == DType::NF4 ? 832 : 64;
        for (std::int64_t tokens : {1, 3, 40}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(type) << " tokens=" << tokens);
            std::vector<std::vector<std::uint8_t>> bytes;
            std::vector<std::vector<float>> dense;
            for (std::int64_t e = 0; e < experts; ++e) {
                bytes.push_back(random_weights(type, rows, cols, static_cast<std::uint32_t>(100 + e)));
                dense.push_back(testing::dequantized_weights(type, bytes.back(), rows, cols));
            }
            // Experts 1 and 4 are never chosen.
            std::vector<std::int32_t> chosen(size(tokens * top_k));
            const std::int32_t pool[] = {0, 2, 3, 5};
            for (std::int64_t t = 0; t < tokens; ++t) {
                chosen[size(t * top_k)] = pool[t % 4];
                chosen[size(t * top_k + 1)] = pool[(t + 1 + (t / 4) % 3) % 4];
            }
            std::vector<const void*> slices(size(experts));
            for (std::int64_t e = 0; e < experts; ++e) slices[size(e)] = (e == 1 || e == 4) ? nullptr : bytes[size(e)].data();
            const ExpertMatrices w{type, experts, rows, cols, slices.data()};
            ExpertGroups groups;
            moe_group(groups, chosen.data(), tokens, top_k, experts);
            EXPECT_EQ(groups.offsets[2] - groups.offsets[1], 0);
            const auto x = random_floats(size(groups.rows() * cols), 7);
            const auto bias = random_floats(size(experts * rows), 8);
            std::vector<float> y(size(groups.rows() * rows));
            expert_matmul_forward(y.data(), x.data(), w, bias.data(), groups);
            const auto dy = random_floats(y.size(), 9);
            std::vector<float> dx(x.size(), 0.5f);
            expert_matmul_backward_input(dx.data(), dy.data(), w, groups);
            for (std::int64_t e = 0; e < experts; ++e)
                for (std::int64_t row = groups.offsets[size(e)]; row < groups.offsets[size(e + 1)]; ++row) {
                    ASSERT_EQ(chosen[size(groups.slot_of_row[size(row)])], e);
                    const auto& m = dense[size(e)];
                    // Tolerance as test_matmul's: fp32 sums of ≤ 256 terms against double, 2e-5 of Σ|terms|.
                    for (std::int64_t o = 0; o < rows; ++o) {
                        double expected = bias[size(e * rows + o)], magnitude = 0.0;
                        for (std::int64_t i = 0; i < cols; ++i) {
                            const double term = static_cast<double>(x[size(row * cols + i)]) * m[size(o * cols + i)];
                            expected += term;
                            magnitude += std::abs(term);
                        }
                        ASSERT_NEAR(y[size(row * rows + o)], expected, 2e-5 * magnitude + 1e-6);
                    }
                    for (std::int64_t i = 0; i < cols; ++i) {
                        double expected = 0.5, magnitude = 0.0;
                        for (std::int64_t o = 0; o < rows; ++o) {
                            const double term = static_cast<double>(dy[size(row * rows + o)]) * m[size(o * cols + i)];
                            expected += term;
                            magnitude += std::abs(term);
                        }
                        ASSERT_NEAR(dx[size(row * cols + i)], expected, 2e-5 * magnitude + 1e-6);
                    }
                }
        }
    }
}

// A contiguous stack quantized at load holds each expert's matrix whole, NF4's nested scales
// included (core/dtype.h's Nf4Layout), so expert e starts matrix_bytes · e in; row_bytes · rows
// would land inside expert e - 1's scales.
TEST(ExpertMatmul, SlicesOfAContiguousStackAreWholeMatrices) {
    for (DType type : {DType::Q4_0, DType::NF4}) {
        const std::int64_t experts = 3, rows = 7, cols = 576;
        std::vector<std::uint8_t> stack;
        std::vector<std::vector<float>> dense;
        for (std::int64_t e = 0; e < experts; ++e) {
            const auto bytes = random_weights(type, rows, cols, static_cast<std::uint32_t>(50 + e));
            stack.insert(stack.end(), bytes.begin(), bytes.end());
            dense.push_back(testing::dequantized_weights(type, bytes, rows, cols));
        }
        std::vector<const void*> slices;
        expert_slices(slices, stack.data(), type, experts, rows, cols);
        ASSERT_EQ(slices.size(), size(experts));
        for (std::int64_t e = 0; e < experts; ++e) {
            std::vector<float> got(size(rows * cols));
            dequantize_row(type, slices[size(e)], got.data(), rows * cols);
            EXPECT_EQ(got, dense[size(e)]) << dtype_name(type) << " expert " << e;
        }
    }
}

TEST(MoeRouting, TopKOrderAndTiesFollowTorch) {
    // Token 0: distinct logits; token 1: a tie between experts 1 and 3 (lower id first).
    const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.0f, 0.5f, 1.5f, 0.0f, 1.5f};
    std::vector<std::int32_t> chosen(4);
    std::vector<float> weights(4);
    moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 2, RouterKind::TopKSoftmax, false});
    EXPECT_EQ(chosen, (std::vector<std::int32_t>{1, 3, 1, 3}));
    EXPECT_NEAR(weights[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
    EXPECT_FLOAT_EQ(weights[2], 0.5f);
    // SoftmaxTopK without normalisation keeps the full softmax's probabilities.
    moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 2, RouterKind::SoftmaxTopK, false});
    const double z = std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.0);
    EXPECT_NEAR(weights[0], std::exp(2.0) / z, 1e-7);
    EXPECT_NEAR(weights[1], std::exp(1.0) / z, 1e-7);
}

TEST(MoeRouting, RejectsBadShapesAndChoices) {
    const std::vector<float> logits(8, 0.0f);
    std::vector<std::int32_t> chosen(8);
    std::vector<float> weights(8);
    EXPECT_THROW(moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 5, RouterKind::SoftmaxTopK, true}),
                 Error);
    EXPECT_THROW(moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 0, RouterKind::TopKSoftmax, true}),
                 Error);
    std::vector<float> nan_logits(4, std::nanf(""));
    EXPECT_THROW(moe_route_forward(chosen.data(), weights.data(), nan_logits.data(), {1, 4, 2, RouterKind::TopKSoftmax, true}),
                 Error);
    ExpertGroups groups;
    const std::vector<std::int32_t> outside = {0, 4}, twice = {2, 2};
    EXPECT_THROW(moe_group(groups, outside.data(), 1, 2, 4), Error);
    EXPECT_THROW(moe_group(groups, twice.data(), 1, 2, 4), Error);
    const std::vector<std::int32_t> fine = {0, 3};
    moe_group(groups, fine.data(), 1, 2, 4);
    std::vector<const void*> slices(3);
    std::vector<float> y(8), x(8);
    EXPECT_THROW(expert_matmul_forward(y.data(), x.data(), {DType::F32, 3, 2, 2, slices.data()}, nullptr, groups), Error);
    std::vector<float> a(8), b(8);
    EXPECT_THROW(expert_lora_up_forward(y.data(), x.data(), b.data(), {1, 2, 2}, groups, {4, 2, 2, 1, 1.0f}), Error);
}

}  // namespace
}  // namespace kindred::kernels
