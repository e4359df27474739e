// Tests for the 8-bit-activation products (kernels/cpu/int8_dot.h, Precision::Int8 in
// kernels/matmul.h): the activation quantizer against gguf-py's Q8_0 quantizer (golden by
// tools/goldens/q8_0_activations.py); every type's dot against a double-precision reference from
// the dequantized weights (kernels/dequantize.h, itself checked against gguf-py) and the
// dequantized 8-bit activations; the vector code and the AMX-INT8 tiles against the portable code
// bit for bit; and batch invariance through matmul_forward.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/half.h"
#include "kernel_test_util.h"
#include "kernels/cpu/int8_dot.h"
#include "kernels/matmul.h"
#include "test_paths.h"

namespace kindred {
namespace {

namespace int8 = kernels::cpu::int8;

TEST(Int8Dot, ActivationsMatchGgufQ8_0) {
    std::ifstream in(testing::source_path("tests/goldens/quantize/q8_0_activations.json"));
    const auto golden = nlohmann::json::parse(in);
    const std::int64_t rows = golden.at("rows"), cols = golden.at("cols"), blocks = cols / 32;
    const auto input = testing::from_hex<float>(golden.at("input"));
    const auto expected = testing::from_hex<std::uint8_t>(golden.at("q8_0"));
    ASSERT_EQ(expected.size(), static_cast<std::size_t>(rows * blocks * 34));
    for (int8::Code code : {int8::Code::Native, int8::Code::Scalar}) {
        int8::QuantizedRows x;
        x.quantize(input.data(), rows, cols, code);
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t b = 0; b < blocks; ++b) {
                const std::uint8_t* block = expected.data() + (r * blocks + b) * 34;
                std::uint16_t d_bits;
                std::memcpy(&d_bits, block, sizeof d_bits);
                // The scale is kept in fp32; gguf-py stores it as fp16 (inf for the 1e20 row, as ggml).
                const float d = x.scale[static_cast<std::size_t>(r * blocks + b)];
                EXPECT_EQ(fp32_to_fp16(d), d_bits) << "row " << r << " block " << b;
                std::int32_t sum = 0;
                for (int i = 0; i < 32; ++i) {
                    const std::int8_t q = x.q[static_cast<std::size_t>(r * cols + b * 32 + i)];
                    ASSERT_EQ(q, static_cast<std::int8_t>(block[2 + i])) << "row " << r << " element " << b * 32 + i;
                    sum += q;
                }
                EXPECT_EQ(x.scaled_sum[static_cast<std::size_t>(r * blocks + b)], d * static_cast<float>(sum));
            }
    }
}

TEST(Int8Dot, NonFiniteAndTinyActivationBlocks) {
    std::vector<float> x(96, 0.5f);
    x[3] = std::numeric_limits<float>::infinity();
    x[40] = std::numeric_limits<float>::quiet_NaN();
    for (int i = 64; i < 96; ++i) x[static_cast<std::size_t>(i)] = 1e-38f;  // d would be subnormal
    int8::QuantizedRows q;
    for (int8::Code code : {int8::Code::Scalar, int8::Code::Native}) {
        q.quantize(x.data(), 1, 96, code);
        EXPECT_TRUE(std::isnan(q.scale[0]));
        EXPECT_TRUE(std::isnan(q.scale[1]));
        EXPECT_EQ(q.scale[2], 0.0f);
        for (int i = 0; i < 96; ++i) EXPECT_EQ(q.q[static_cast<std::size_t>(i)], 0) << i;
    }
    // A NaN scale makes the product NaN, as fp32 would.
    const auto w = testing::random_weights(DType::Q8_0, 1, 96, 5);
    int8::UnpackedRow scratch;
    float y = 0.0f;
    int8::dot_row(DType::Q8_0, w.data(), q, &y, 1, scratch);
    EXPECT_TRUE(std::isnan(y));
}

// Activations for the dot tests: a few tokens of random values, with blocks that are all
// negative, all zero (d = 0), huge (1e15) and tiny (1e-20) in token 0.
std::vector<float> activations(std::int64_t tokens, std::int64_t cols, std::uint32_t seed) {
    auto x = testing::random_floats(static_cast<std::size_t>(tokens * cols), seed, -2.0f, 2.0f);
    const std::int64_t blocks = cols / 32;
    auto fill_block = [&](std::int64_t b, auto value) {
        if (b >= blocks) return;
        for (std::int64_t i = 0; i < 32; ++i) x[static_cast<std::size_t>(b * 32 + i)] = value(x[static_cast<std::size_t>(b * 32 + i)]);
    };
    fill_block(1, [](float v) { return -std::abs(v); });
    fill_block(2, [](float) { return 0.0f; });
    fill_block(3, [](float v) { return v * 1e15f; });
    fill_block(5, [](float v) { return v * 1e-20f; });
    return x;
}

struct DotCase {
    DType type;
    std::int64_t cols;
};

class Int8DotTypes : public ::testing::TestWithParam<DotCase> {};

// The dot is Σ_b d_w·d_x·Σ(q_w·q_x) + Σ_b m_b·d_x·Σq_x with exact integer sums, so against the
// double product of the dequantized weights and the dequantized activations it differs only by
// fp32 rounding: the block scales d_w·d_x (1 rounding each), the fused multiply-adds down each of
// the eight chains (at most 2·ceil(blocks / 8) each) and the three chain additions, plus the
// reference's own input: dequantized weights are the fp32 rounding of d·q + m (within 2^-24
// relative). By the recursive-summation bound the difference is at most (blocks + 8)·2^-24 · M,
// with M = Σ_i (|w_i| + 2|m_b|)·|x_i| ≥ Σ_i (|w_i − m_b| + |m_b|)·|x_i| bounding every term's
// magnitude (|m_b| ≤ 63·|dmin| for Q4_K).
TEST_P(Int8DotTypes, MatchesDoubleReferenceAndPortableCode) {
    const auto [type, cols] = GetParam();
    const std::int64_t rows = 5, blocks = cols / 32;
    const auto bytes = testing::random_weights(type, rows, cols, 17);
    const auto weights = testing::dequantized_weights(type, bytes, rows, cols);
    // 1-4 tokens read the packed row; 6 are a group of 4 and 2 alone on the unpacked row.
    for (const std::int64_t tokens : {1, 2, 3, 4, 6}) {
        const auto x = activations(tokens, cols, 29);
        int8::QuantizedRows q, portable_q;
        q.quantize(x.data(), tokens, cols);
        portable_q.quantize(x.data(), tokens, cols, int8::Code::Scalar);
        ASSERT_EQ(q.q, portable_q.q);
        ASSERT_EQ(q.scale, portable_q.scale);
        ASSERT_EQ(q.scaled_sum, portable_q.scaled_sum);
        const std::size_t stride = row_bytes(type, static_cast<std::uint64_t>(cols));
        int8::UnpackedRow scratch;
        for (std::int64_t r = 0; r < rows; ++r) {
            const std::uint8_t* row = bytes.data() + r * static_cast<std::int64_t>(stride);
            std::vector<float> native(tokens), portable(tokens);
            int8::dot_row(type, row, q, native.data(), 1, scratch, int8::Code::Native);
            int8::dot_row(type, row, q, portable.data(), 1, scratch, int8::Code::Scalar);
            for (std::int64_t t = 0; t < tokens; ++t) {
                ASSERT_EQ(std::memcmp(&native[t], &portable[t], sizeof(float)), 0)
                    << dtype_name(type) << " row " << r << " token " << t << ": " << native[t] << " vs " << portable[t];
                double reference = 0.0, magnitude = 0.0;
                for (std::int64_t b = 0; b < blocks; ++b) {
                    double min = 0.0;  // the block's min term per element (Q4_K: its bound)
                    auto half_at = [](const std::uint8_t* p) { return fp16_to_fp32(static_cast<std::uint16_t>(p[0] | p[1] << 8)); };
                    if (type == DType::Q4_1) min = half_at(row + b * 20 + 2);
                    if (type == DType::Q4_K) min = 63.0 * std::abs(half_at(row + (b / 8) * 144 + 2));
                    const double dx = q.scale[static_cast<std::size_t>(t * blocks + b)];
                    for (std::int64_t i = b * 32; i < (b + 1) * 32; ++i) {
                        const double w = weights[static_cast<std::size_t>(r * cols + i)];
                        const double xi = dx * q.q[static_cast<std::size_t>(t * cols + i)];
                        reference += w * xi;
                        magnitude += (std::abs(w) + 2.0 * std::abs(min)) * std::abs(xi);
                    }
                }
                const double bound = static_cast<double>(blocks + 8) * std::ldexp(1.0, -24) * magnitude;
                EXPECT_NEAR(native[t], reference, bound) << dtype_name(type) << " row " << r << " token " << t;
                EXPECT_TRUE(std::isfinite(native[t]));
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Types, Int8DotTypes,
                         ::testing::Values(DotCase{DType::Q4_0, 7 * 32}, DotCase{DType::Q4_1, 7 * 32},
                                           DotCase{DType::Q5_0, 9 * 32}, DotCase{DType::Q8_0, 7 * 32},
                                           DotCase{DType::MXFP4, 11 * 32}, DotCase{DType::Q4_0, 32},
                                           DotCase{DType::Q4_K, 3 * 256}, DotCase{DType::Q6_K, 3 * 256},
                                           DotCase{DType::Q6_K, 256}),
                         [](const auto& param_info) {
                             const DotCase& c = param_info.param;
                             return std::string(dtype_name(c.type)) + "_" + std::to_string(c.cols);
                         });

// The AMX-INT8 tiles give the portable code's bits: whole and partial tiles of rows (16, 5, 21)
// and of tokens (5, 16, 17, 33), for every type they serve (the 7-block Q4_1 row has a tail group
// of chains; Q4_K's 24 blocks three whole groups).
TEST(Int8Dot, TilesMatchPortableCode) {
    if (!int8::use_tiles(DType::Q4_1, 16)) GTEST_SKIP() << "no AMX-INT8 on this CPU or build";
    EXPECT_FALSE(int8::use_tiles(DType::Q4_1, 4));
    EXPECT_FALSE(int8::use_tiles(DType::Q6_K, 16));
    const DotCase cases[] = {{DType::Q4_0, 7 * 32}, {DType::Q4_1, 7 * 32}, {DType::Q5_0, 9 * 32},
                             {DType::Q8_0, 7 * 32}, {DType::MXFP4, 11 * 32}, {DType::Q4_K, 3 * 256}};
    for (const auto& [type, cols] : cases) {
        const std::size_t stride = row_bytes(type, static_cast<std::uint64_t>(cols));
        for (const std::int64_t rows : {16, 5, 21}) {
            const auto bytes = testing::random_weights(type, rows, cols, 23);
            for (const std::int64_t tokens : {5, 16, 17, 33}) {
                const auto x = activations(tokens, cols, 31);
                int8::QuantizedRows q;
                q.quantize(x.data(), tokens, cols);
                std::vector<float> tiles(static_cast<std::size_t>(tokens * rows), -1.0f), portable(tiles.size());
                int8::TileRows scratch;
                int8::dot_tiles(type, bytes.data(), static_cast<std::int64_t>(stride), rows, q, tiles.data(), rows, scratch);
                int8::UnpackedRow row_scratch;
                for (std::int64_t r = 0; r < rows; ++r)
                    int8::dot_row(type, bytes.data() + r * static_cast<std::int64_t>(stride), q, portable.data() + r, rows,
                                  row_scratch, int8::Code::Scalar);
                for (std::size_t i = 0; i < tiles.size(); ++i)
                    ASSERT_EQ(std::memcmp(&tiles[i], &portable[i], sizeof(float)), 0)
                        << dtype_name(type) << " " << rows << " rows x " << tokens << " tokens: row " << i % rows
                        << " token " << i / rows << ": " << tiles[i] << " vs " << portable[i];
            }
        }
    }
}

// A token's outputs are the same bits alone or in a batch of any size.
TEST(Int8Dot, BatchInvariantThroughMatmul) {
    for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::MXFP4, DType::Q4_K, DType::Q6_K}) {
        const std::int64_t rows = 37, cols = 512, most = 34;
        const auto bytes = testing::random_weights(type, rows, cols, 41);
        const kernels::Matrix w{type, rows, cols, bytes.data()};
        const auto x = activations(most, cols, 43);
        std::vector<float> alone(static_cast<std::size_t>(most * rows));
        for (std::int64_t t = 0; t < most; ++t)
            kernels::matmul_forward(alone.data() + t * rows, x.data() + t * cols, w, nullptr, 1, kernels::Precision::Int8);
        // Every row, whichever thread took it, is dot_row's product (tested against double above).
        int8::QuantizedRows q;
        q.quantize(x.data(), most, cols);
        int8::UnpackedRow scratch;
        std::vector<float> direct(alone.size());
        const std::size_t stride = row_bytes(type, static_cast<std::uint64_t>(cols));
        for (std::int64_t r = 0; r < rows; ++r)
            int8::dot_row(type, bytes.data() + r * static_cast<std::int64_t>(stride), q, direct.data() + r, rows, scratch);
        ASSERT_EQ(std::memcmp(direct.data(), alone.data(), alone.size() * sizeof(float)), 0) << dtype_name(type);
        for (std::int64_t tokens : {2, 3, 4, 5, 8, 11, 34}) {  // groups of 4 and leftovers; past sgemm's start
            std::vector<float> batch(static_cast<std::size_t>(tokens * rows));
            kernels::matmul_forward(batch.data(), x.data(), w, nullptr, tokens, kernels::Precision::Int8);
            ASSERT_EQ(std::memcmp(batch.data(), alone.data(), batch.size() * sizeof(float)), 0)
                << dtype_name(type) << " in a batch of " << tokens;
        }
    }
}

// Types without an integer dot compute in Int8 exactly as in F32.
TEST(Int8Dot, OtherTypesComputeAsF32) {
    for (DType type : {DType::F32, DType::F16, DType::BF16, DType::NF4}) {
        const std::int64_t rows = 9, cols = 128, tokens = 3;
        const auto bytes = testing::random_weights(type, rows, cols, 3);
        const kernels::Matrix w{type, rows, cols, bytes.data()};
        const auto x = testing::random_floats(static_cast<std::size_t>(tokens * cols), 4);
        std::vector<float> a(static_cast<std::size_t>(tokens * rows)), b(a.size());
        kernels::matmul_forward(a.data(), x.data(), w, nullptr, tokens, kernels::Precision::Int8);
        kernels::matmul_forward(b.data(), x.data(), w, nullptr, tokens, kernels::Precision::F32);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << dtype_name(type);
    }
}

}  // namespace
}  // namespace kindred
