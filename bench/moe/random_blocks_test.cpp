// RandomBlocks (random_blocks.h): the random contents of a shape-true GGUF dequantize, through the
// kernels' ggml-exact dequantize_row, to finite zero-mean values of a small scale for every
// quantized type the generator writes; an offset common to every weight would make all hidden
// states alike and route every token to the same experts.
#include "random_blocks.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/dequantize.h"

namespace {

using kindred::DType;

TEST(RandomBlocks, QuantizedTypesDequantizeToZeroMeanValues) {
    for (const DType type : {DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::MXFP4}) {
        SCOPED_TRACE(kindred::dtype_name(type));
        const auto& info = kindred::dtype_info(type);
        constexpr std::int64_t blocks = 1024;
        const std::int64_t n = blocks * info.block_size;
        std::vector<std::uint8_t> bytes(static_cast<std::size_t>(blocks * info.block_bytes));
        RandomBlocks().fill(type, bytes, /*norm=*/false);
        std::vector<float> values(static_cast<std::size_t>(n));
        kindred::dequantize_row(type, bytes.data(), values.data(), n);
        double sum = 0.0, sum_squares = 0.0;
        for (const float v : values) {
            ASSERT_TRUE(std::isfinite(v));
            sum += v;
            sum_squares += static_cast<double>(v) * v;
        }
        const double mean = sum / static_cast<double>(n);
        const double stddev = std::sqrt(sum_squares / static_cast<double>(n) - mean * mean);
        // The spread is what the generator aims for (a small fixed scale), not a degenerate one.
        EXPECT_GT(stddev, 0.005);
        EXPECT_LT(stddev, 0.5);
        // Zero mean up to sampling noise: Q4_K's values share a random offset per 32-value sub-block
        // (d·s·7.5 - dmin·m, about 0.75 of the spread), so the mean of 1,024 blocks' 8,192 sub-blocks
        // wanders by about 0.75 / sqrt(8192) ≈ 0.008 of the spread; 0.05 is six of those. The
        // old Q4_K filler (dmin = d) gave a mean of 0.94 of the spread.
        EXPECT_LT(std::abs(mean), 0.05 * stddev);
    }
}

}  // namespace
