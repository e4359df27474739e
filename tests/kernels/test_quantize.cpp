// Tests for kernels/quantize.h against the references others wrote: Q4_K and Q5_0 blocks byte for
// byte against llama.cpp's quantize_row_q4_K_ref / quantize_row_q5_0_ref
// (tests/goldens/quantize/ggml.json), NF4 against
// bitsandbytes' quantize_4bit / dequantize_4bit (nf4.json); both written by tools/goldens/.
// Then the NF4 kernels: the AVX2 dequantizer against the scalar one, and products of NF4 weights
// against the same weights dequantized into fp32.
#include <gtest/gtest.h>

#include <algorithm>
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
#include "nf4_test_util.h"
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

    // Dequantized through the kernels' NF4 tensor: each value is codebook * restored absmax, and
    // the restored absmax carries the offset's ulps, so values agree to 1e-6 of their block's absmax.
    std::vector<std::uint8_t> tensor(matrix_bytes(DType::NF4, static_cast<std::uint64_t>(n)));
    nf4_pack(state, tensor.data());
    std::vector<float> out(static_cast<std::size_t>(n));
    dequantize_row(DType::NF4, tensor.data(), out.data(), n);
    const auto expected = testing::from_hex<float>(g.at("dequantized"));
    const std::vector<float> absmax = nf4_absmax(state);
    for (std::int64_t i = 0; i < n; ++i) {
        const float scale = absmax[static_cast<std::size_t>(i / kNf4BlockSize)];
        ASSERT_NEAR(out[static_cast<std::size_t>(i)], expected[static_cast<std::size_t>(i)], 1e-6f * scale) << "element " << i;
    }
}

// An NF4 tensor of random weights (valid absmax values, unlike random bytes).
std::vector<std::uint8_t> nf4_weights(std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
    const std::vector<float> values = testing::random_floats(static_cast<std::size_t>(rows * cols), seed, -0.2f, 0.2f);
    const Nf4State state = quantize_nf4(DType::F32, values.data(), rows * cols);
    std::vector<std::uint8_t> tensor(matrix_bytes(DType::NF4, static_cast<std::uint64_t>(rows * cols)));
    nf4_pack(state, tensor.data());
    return tensor;
}

TEST(QuantizeNf4, FastDequantizerMatchesTheScalarReference) {
    const std::int64_t n = 8192 + 64;
    std::vector<std::uint8_t> tensor = nf4_weights(1, n, 5);
    tensor.insert(tensor.begin(), 0);  // one byte past an aligned address: no alignment assumed
    std::vector<float> fast(static_cast<std::size_t>(n)), scalar(static_cast<std::size_t>(n));
    dequantize_row(DType::NF4, tensor.data() + 1, fast.data(), n);
    detail::dequantize_row_scalar(DType::NF4, tensor.data() + 1, scalar.data(), n);
    for (std::size_t i = 0; i < fast.size(); ++i)
        ASSERT_EQ(std::bit_cast<std::uint32_t>(fast[i]), std::bit_cast<std::uint32_t>(scalar[i])) << "element " << i;
}

// In memory an NF4 tensor is bitsandbytes' state itself, byte for byte and at its size: the packed
// codes, one 8-bit absmax code per 64 weights, one fp32 per 256 blocks and the offset (4.127 bits a
// weight), not an fp32 absmax per block (4.5).
TEST(QuantizeNf4, HoldsBitsandbytesStateAtItsSize) {
    for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{576, 576}, {1536, 576}, {3, 64}, {37, 1344}}) {
        const std::int64_t n = rows * cols;
        const std::vector<float> values = testing::random_floats(static_cast<std::size_t>(n), 11, -0.1f, 0.1f);
        const Nf4State state = quantize_nf4(DType::F32, values.data(), n);
        const std::size_t blocks = static_cast<std::size_t>(n / 64), groups = (blocks + 255) / 256;
        const std::size_t nested_at = (static_cast<std::size_t>(n / 2) + blocks + 3) / 4 * 4;
        ASSERT_EQ(matrix_bytes(DType::NF4, static_cast<std::uint64_t>(n)), nested_at + 4 * groups + 4) << rows << " x " << cols;
        std::vector<std::uint8_t> tensor(nested_at + 4 * groups + 4, 0xAB);
        nf4_pack(state, tensor.data());
        const auto at = [&](std::size_t offset) { return tensor.begin() + static_cast<std::ptrdiff_t>(offset); };
        EXPECT_TRUE(std::equal(state.packed.begin(), state.packed.end(), at(0)));
        EXPECT_TRUE(std::equal(state.absmax_q.begin(), state.absmax_q.end(), at(static_cast<std::size_t>(n / 2))));
        EXPECT_TRUE(std::all_of(at(static_cast<std::size_t>(n / 2) + blocks), at(nested_at), [](auto b) { return b == 0; }));
        std::vector<float> nested(groups + 1);
        std::memcpy(nested.data(), tensor.data() + nested_at, nested.size() * sizeof(float));
        EXPECT_TRUE(std::equal(state.absmax2.begin(), state.absmax2.end(), nested.begin()));
        EXPECT_EQ(std::bit_cast<std::uint32_t>(nested.back()), std::bit_cast<std::uint32_t>(state.offset));
        // bitsandbytes' 4 + 8/64 + 32/(64·256) bits a weight, plus per tensor at most 3 bytes of
        // padding, the offset and a last nested group of fewer than 256 blocks' share of a scale.
        const double bits = 8.0 * static_cast<double>(tensor.size()) / static_cast<double>(n);
        EXPECT_LE(bits, 4.126953125 + 8.0 * (3 + 4 + 4) / static_cast<double>(n)) << rows << " x " << cols;
    }
    EXPECT_NEAR(8.0 * static_cast<double>(matrix_bytes(DType::NF4, 576 * 576)) / (576 * 576), 4.1272, 1e-4);
    // A stack (experts quantized one by one) holds each expert's matrix whole.
    const std::vector<std::int64_t> stack = {4, 96, 640};
    EXPECT_EQ(tensor_bytes(DType::NF4, stack), 4 * matrix_bytes(DType::NF4, 96 * 640));
}

// The kernels restore each block's absmax from its 8-bit code as they read it; what they produce
// must be, bit for bit, what the kernels computed when every block stored that absmax in fp32 (the
// 4.5-bit layout before this one): codebook[code] · nf4_absmax(state)[block], one fp32 product. So
// every NF4 product, golden and perplexity stays as it was. Shapes where nested groups straddle
// rows, end mid-row, and a last group of fewer than 256 blocks; every row read on its own.
TEST(QuantizeNf4, KernelsRestoreTheAbsmaxTheFp32BlocksHeld) {
    for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{37, 576}, {5, 19200}, {200, 64}, {1, 64}}) {
        std::vector<float> values = testing::random_floats(static_cast<std::size_t>(rows * cols), 21, -1.0f, 1.0f);
        for (std::int64_t r = 0; r < rows; ++r)  // rows of very different scales, as real weights have
            for (std::int64_t c = 0; c < cols; ++c) values[static_cast<std::size_t>(r * cols + c)] *= std::ldexp(1.0f, static_cast<int>(r % 7) - 6);
        SCOPED_TRACE(::testing::Message() << rows << " x " << cols);
        testing::expect_nf4_kernels_restore_fp32_absmax(values, rows, cols);
        if (HasFatalFailure()) return;
    }
}

TEST(QuantizeNf4, ProductsMatchTheDequantizedWeights) {
    // Both matmul paths (mat-vec for 1 token, panels + GEMM for 9) against the dense product of the
    // same dequantized weights; the sums differ only in order: 1e-5 relative to the largest |y|.
    // 80 x 320: two nested groups, the first ending inside row 51.
    const std::int64_t rows = 80, cols = 320;
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
