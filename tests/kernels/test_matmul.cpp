// Tests for kernels/matmul.h: every fused decode path, the generic dequantize-then-dot path and
// the panel + sgemm path against a double-precision product of dequantize_row's weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "kernel_test_util.h"
#include "kernels/dequantize.h"
#include "kernels/matmul.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_weights;

// Tolerance: each output is a K-term fp32 dot product (K = cols ≤ 256 here). Reordered fp32
// summation errs by at most ~K·2^-24 of Σ|w·x| in the worst case and ~sqrt(K)·2^-24 typically;
// the Q4 paths also sum d·Σq·x and m·Σx separately, whose magnitudes reach ~2x Σ|w·x|.
// 2e-5 · Σ|w·x| (≈ 3·sqrt(K)·2^-24·2 for K=256, far under K·2^-24·2 = 3e-5) covers that.
void expect_matmul_matches(DType type, std::int64_t rows, std::int64_t cols, std::int64_t tokens, bool with_bias) {
    SCOPED_TRACE(::testing::Message() << dtype_name(type) << " rows=" << rows << " cols=" << cols << " tokens=" << tokens);
    const auto bytes = random_weights(type, rows, cols, static_cast<std::uint32_t>(rows * 31 + cols + tokens));
    const auto x = kindred::testing::random_floats(static_cast<std::size_t>(tokens * cols), 99);
    const auto bias = kindred::testing::random_floats(static_cast<std::size_t>(rows), 5);
    const auto w = kindred::testing::dequantized_weights(type, bytes, rows, cols);

    std::vector<float> y(static_cast<std::size_t>(tokens * rows), -7.0f);
    matmul_forward(y.data(), x.data(), Matrix{type, rows, cols, bytes.data()}, with_bias ? bias.data() : nullptr, tokens);
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t r = 0; r < rows; ++r) {
            double expected = with_bias ? bias[r] : 0.0, magnitude = 0.0;
            for (std::int64_t c = 0; c < cols; ++c) {
                const double term = static_cast<double>(w[r * cols + c]) * x[t * cols + c];
                expected += term;
                magnitude += std::abs(term);
            }
            ASSERT_NEAR(y[t * rows + r], expected, 2e-5 * magnitude + 1e-6) << "t=" << t << " r=" << r;
        }
}

TEST(Matmul, EveryTypeOnBothPathsMatchesDoubleReference) {
    // tokens 1 and 3 take the mat-vec path, 4 and 19 the panel + sgemm path.
    // NF4: 576 columns (9 blocks) over 53 rows make two nested groups, the first ending inside row 28.
    for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q6_K,
                       DType::NF4}) {
        const std::int64_t cols = type == DType::Q6_K ? 512 : type == DType::NF4 ? 576 : 256;
        for (std::int64_t tokens : {1, 3, 4, 19}) {
            expect_matmul_matches(type, 53, cols, tokens, tokens % 2 == 1);
            if (HasFatalFailure()) return;
        }
    }
}

TEST(Matmul, PlainTypesAcceptColumnCountsOffTheVectorWidth) {
    for (DType type : {DType::F32, DType::F16, DType::BF16})
        for (std::int64_t tokens : {1, 5}) expect_matmul_matches(type, 17, 37, tokens, true);
}

TEST(Matmul, ManyRowsSpreadOverThreads) {
    expect_matmul_matches(DType::Q4_1, 1000, 576, 1, false);
    expect_matmul_matches(DType::Q4_1, 1000, 576, 7, false);
}

TEST(Matmul, RejectsPartialBlocks) {
    std::vector<std::uint8_t> bytes(1000);
    std::vector<float> x(48), y(4);
    EXPECT_THROW(matmul_forward(y.data(), x.data(), Matrix{DType::Q4_1, 1, 48, bytes.data()}, nullptr, 1), Error);
}

TEST(Embedding, RowsAreDequantizedAndIdsChecked) {
    const std::int64_t rows = 40, cols = 64;
    const auto bytes = random_weights(DType::Q8_0, rows, cols, 3);
    const std::int32_t ids[] = {0, 39, 7, 7};
    std::vector<float> out(4 * cols), expected(cols);
    const Matrix table{DType::Q8_0, rows, cols, bytes.data()};
    embedding_forward(out.data(), ids, 4, table);
    const std::size_t stride = row_bytes(DType::Q8_0, cols);
    for (int t = 0; t < 4; ++t) {
        dequantize_row(DType::Q8_0, bytes.data() + ids[t] * stride, expected.data(), cols);
        for (std::int64_t c = 0; c < cols; ++c) ASSERT_EQ(out[t * cols + c], expected[c]);
    }
    const std::int32_t bad[] = {40};
    EXPECT_THROW(embedding_forward(out.data(), bad, 1, table), Error);
    const std::int32_t negative[] = {-1};
    EXPECT_THROW(embedding_forward(out.data(), negative, 1, table), Error);
}

}  // namespace
}  // namespace kindred::kernels
