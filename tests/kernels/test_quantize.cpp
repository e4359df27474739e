// Tests for kernels/quantize.h against the references others wrote: Q4_K and Q5_0 blocks byte for
// byte against llama.cpp's quantize_row_q4_K_ref / quantize_row_q5_0_ref
// (tests/goldens/quantize/ggml.json), NF4 against
// bitsandbytes' quantize_4bit / dequantize_4bit (nf4.json); both written by tools/goldens/.
// Then the NF4 kernels: the AVX2 dequantizer against the scalar one, and products of NF4 weights
// against the same weights dequantized into fp32.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/dequantize.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "test_paths.h"

namespace kindred {
namespace {

nlohmann::json golden(const std::string& name) {
    std::ifstream in(testing::source_path("tests/goldens/quantize/" + name));
    return nlohmann::json::parse(in);
}

// An array stored as the hex of its little-endian bytes.
TEST(QuantizeGgml, Q4KAndQ5_0MatchLlamaCppReferenceByteForByte) {
    const auto g = golden("ggml.json");
    const std::int64_t rows = g.at("rows"), cols = g.at("cols");
    const auto input = testing::from_hex<float>(g.at("input"));
    for (const auto& [key, type, quantize] : {std::tuple{"q4_k", DType::Q4_K, &quantize_q4_k},
                                              std::tuple{"q5_0", DType::Q5_0, &quantize_q5_0}}) {
        const auto expected = testing::from_hex<std::uint8_t>(g.at(key));
        const auto row_size = static_cast<std::int64_t>(row_bytes(type, static_cast<std::uint64_t>(cols)));
        ASSERT_EQ(expected.size(), static_cast<std::size_t>(rows * row_size));
        for (std::int64_t r = 0; r < rows; ++r) {
            std::vector<std::uint8_t> blocks(static_cast<std::size_t>(row_size));
            quantize(DType::F32, input.data() + r * cols, blocks.data(), cols);
            for (std::int64_t i = 0; i < row_size; ++i)
                ASSERT_EQ(blocks[static_cast<std::size_t>(i)], expected[static_cast<std::size_t>(r * row_size + i)])
                    << key << " row " << r << " byte " << i;
        }
    }
}

TEST(QuantizeGgml, ReadsBf16AsItsFloatValues) {
    // A checkpoint's bf16 weights quantize as their exact fp32 values would.
    const std::vector<float> values = testing::random_floats(512, 3, -0.1f, 0.1f);
    std::vector<std::uint16_t> bf16(values.size());
    std::vector<float> rounded(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        bf16[i] = fp32_to_bf16(values[i]);
        rounded[i] = bf16_to_fp32(bf16[i]);
    }
    std::vector<std::uint8_t> from_bf16(288), from_f32(288);
    quantize_q4_k(DType::BF16, bf16.data(), from_bf16.data(), 512);
    quantize_q4_k(DType::F32, rounded.data(), from_f32.data(), 512);
    EXPECT_EQ(from_bf16, from_f32);
}

TEST(QuantizeNf4, MatchesBitsandbytes) {
    const auto g = golden("nf4.json");
    const std::int64_t n = static_cast<std::int64_t>(g.at("rows")) * static_cast<std::int64_t>(g.at("cols"));
    const auto input = testing::from_hex<float>(g.at("input"));
    const Nf4State state = quantize_nf4(DType::F32, input.data(), n);

    const auto code = testing::from_hex<float>(g.at("code"));
    ASSERT_EQ(code.size(), 256u);
    for (std::size_t i = 0; i < code.size(); ++i) ASSERT_EQ(nf4_absmax_code()[i], code[i]) << "dynamic map entry " << i;

    // The codes are the same bytes: the buckets depend only on each block's own absmax.
    EXPECT_EQ(state.packed, testing::from_hex<std::uint8_t>(g.at("packed")));
    // torch's fp32 mean sums in an order of its own; Kindred sums in double. Two ulp apart at most.
    const float offset = testing::from_hex<float>(g.at("offset")).at(0);
    EXPECT_LE(std::abs(std::bit_cast<std::int32_t>(state.offset) - std::bit_cast<std::int32_t>(offset)), 2) << state.offset;
    // absmax2 is a max of |absmax - offset|: it inherits the offset's difference, an ulp or two of it.
    const auto absmax2 = testing::from_hex<float>(g.at("absmax2"));
    ASSERT_EQ(state.absmax2.size(), absmax2.size());
    for (std::size_t i = 0; i < absmax2.size(); ++i) EXPECT_NEAR(state.absmax2[i], absmax2[i], 4e-7f * absmax2[i]);
    // No normalized absmax of this golden lies within that difference of a code boundary.
    EXPECT_EQ(state.absmax_q, testing::from_hex<std::uint8_t>(g.at("absmax_q")));

    // Dequantized through the kernels' NF4 blocks: each value is codebook * restored absmax, and
    // the restored absmax carries the offset's ulps, so values agree to 1e-6 of their block's absmax.
    std::vector<std::uint8_t> blocks(row_bytes(DType::NF4, static_cast<std::uint64_t>(n)));
    nf4_blocks(state, blocks.data());
    std::vector<float> out(static_cast<std::size_t>(n));
    dequantize_row(DType::NF4, blocks.data(), out.data(), n);
    const auto expected = testing::from_hex<float>(g.at("dequantized"));
    const std::vector<float> absmax = nf4_absmax(state);
    for (std::int64_t i = 0; i < n; ++i) {
        const float scale = absmax[static_cast<std::size_t>(i / kNf4BlockSize)];
        ASSERT_NEAR(out[static_cast<std::size_t>(i)], expected[static_cast<std::size_t>(i)], 1e-6f * scale) << "element " << i;
    }
}

// NF4 blocks of random weights (valid absmax values, unlike random bytes).
std::vector<std::uint8_t> nf4_weights(std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
    const std::vector<float> values = testing::random_floats(static_cast<std::size_t>(rows * cols), seed, -0.2f, 0.2f);
    const Nf4State state = quantize_nf4(DType::F32, values.data(), rows * cols);
    std::vector<std::uint8_t> blocks(row_bytes(DType::NF4, static_cast<std::uint64_t>(rows * cols)));
    nf4_blocks(state, blocks.data());
    return blocks;
}

TEST(QuantizeNf4, FastDequantizerMatchesTheScalarReference) {
    const std::int64_t n = 8192 + 64;
    std::vector<std::uint8_t> blocks = nf4_weights(1, n, 5);
    blocks.insert(blocks.begin(), 0);  // one byte past an aligned address: no alignment assumed
    std::vector<float> fast(static_cast<std::size_t>(n)), scalar(static_cast<std::size_t>(n));
    dequantize_row(DType::NF4, blocks.data() + 1, fast.data(), n);
    detail::dequantize_row_scalar(DType::NF4, blocks.data() + 1, scalar.data(), n);
    for (std::size_t i = 0; i < fast.size(); ++i)
        ASSERT_EQ(std::bit_cast<std::uint32_t>(fast[i]), std::bit_cast<std::uint32_t>(scalar[i])) << "element " << i;
}

TEST(QuantizeNf4, ProductsMatchTheDequantizedWeights) {
    // Both matmul paths (mat-vec for 1 token, panels + GEMM for 9) against the dense product of the
    // same dequantized weights; the sums differ only in order: 1e-5 relative to the largest |y|.
    const std::int64_t rows = 48, cols = 320;
    const std::vector<std::uint8_t> blocks = nf4_weights(rows, cols, 9);
    std::vector<float> dense(static_cast<std::size_t>(rows * cols));
    dequantize_row(DType::NF4, blocks.data(), dense.data(), rows * cols);
    for (const std::int64_t tokens : {1, 9}) {
        const std::vector<float> x = testing::random_floats(static_cast<std::size_t>(tokens * cols), 2);
        std::vector<float> y(static_cast<std::size_t>(tokens * rows)), reference(y.size());
        kernels::matmul_forward(y.data(), x.data(), kernels::Matrix{DType::NF4, rows, cols, blocks.data()}, nullptr, tokens);
        kernels::matmul_forward(reference.data(), x.data(), kernels::Matrix{DType::F32, rows, cols, dense.data()}, nullptr, tokens);
        float largest = 0.0f;
        for (const float v : reference) largest = std::max(largest, std::abs(v));
        for (std::size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], reference[i], 1e-5f * largest) << tokens << " tokens, " << i;
    }
}

TEST(Quantize, RefusesPartialBlocksAndNonFiniteValues) {
    std::vector<float> values(512, 0.5f);
    std::vector<std::uint8_t> out(1024);
    EXPECT_THROW(quantize_q4_k(DType::F32, values.data(), out.data(), 320), Error);
    EXPECT_THROW(quantize_q5_0(DType::F32, values.data(), out.data(), 48), Error);
    EXPECT_THROW(quantize_nf4(DType::F32, values.data(), 96), Error);
    values[300] = std::numeric_limits<float>::infinity();
    try {
        quantize_q4_k(DType::F32, values.data(), out.data(), 512);
        FAIL() << "an infinite weight was quantized";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("element 300"), std::string::npos) << error.what();
    }
    values[300] = std::nanf("");
    EXPECT_THROW(quantize_nf4(DType::F32, values.data(), 512), Error);
}

}  // namespace
}  // namespace kindred
