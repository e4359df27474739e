// dequantize_row: hand-worked blocks that pin down each format's semantics, the SIMD paths
// against the scalar reference on large random inputs (bit for bit), and argument errors.
// Bit-exactness against gguf-py itself is tested in tests/formats/test_gguf_golden.cpp.
#include "kernels/dequantize.h"

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/half.h"

namespace kindred {
namespace {

void put_half(std::uint8_t* p, float value) {
    const std::uint16_t bits = fp32_to_fp16(value);
    std::memcpy(p, &bits, 2);
}

std::vector<float> dequantize(DType type, const std::vector<std::uint8_t>& bytes, std::int64_t n) {
    std::vector<float> out(static_cast<std::size_t>(n));
    dequantize_row(type, bytes.data(), out.data(), n);
    return out;
}

TEST(Dequantize, Q4_1Block) {
    std::vector<std::uint8_t> block(20);
    put_half(&block[0], 0.5f);
    put_half(&block[2], -1.0f);
    for (int j = 0; j < 16; ++j) block[4 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
    const std::vector<float> out = dequantize(DType::Q4_1, block, 32);
    // Low nibbles are elements 0..15, high nibbles 16..31; value = q * d + m.
    EXPECT_EQ(out[0], -1.0f);
    EXPECT_EQ(out[3], 0.5f);
    EXPECT_EQ(out[15], 6.5f);
    EXPECT_EQ(out[16], 6.5f);
    EXPECT_EQ(out[31], -1.0f);
}

TEST(Dequantize, Q4_0AndQ8_0Blocks) {
    std::vector<std::uint8_t> q4(18);
    put_half(&q4[0], 2.0f);
    q4[2] = 0x0F;  // element 0: 15 - 8 = 7, element 16: 0 - 8 = -8
    const std::vector<float> out4 = dequantize(DType::Q4_0, q4, 32);
    EXPECT_EQ(out4[0], 14.0f);
    EXPECT_EQ(out4[16], -16.0f);
    EXPECT_EQ(out4[1], -16.0f);

    std::vector<std::uint8_t> q8(34);
    put_half(&q8[0], 0.25f);
    for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(j * 8 - 128));
    const std::vector<float> out8 = dequantize(DType::Q8_0, q8, 32);
    EXPECT_EQ(out8[0], -32.0f);
    EXPECT_EQ(out8[31], 30.0f);
}

TEST(Dequantize, Q5_0Block) {
    std::vector<std::uint8_t> block(22);
    put_half(&block[0], 0.5f);
    // qh bit j is the fifth bit of element j: elements 0 and 17 get it, element 31 does not.
    const std::uint32_t high_bits = (1u << 0) | (1u << 17);
    std::memcpy(&block[2], &high_bits, 4);
    block[6 + 0] = 0xF3;   // element 0: 3 | 16 -> 19 - 16 = 3; element 16: 15 - 16 = -1
    block[6 + 1] = 0x02;   // element 1: 2 - 16 = -14; element 17: 0 | 16 -> 0
    block[6 + 15] = 0xFF;  // element 15: 15 - 16; element 31: 15 - 16
    const std::vector<float> out = dequantize(DType::Q5_0, block, 32);
    EXPECT_EQ(out[0], 1.5f);
    EXPECT_EQ(out[16], -0.5f);
    EXPECT_EQ(out[1], -7.0f);
    EXPECT_EQ(out[17], 0.0f);
    EXPECT_EQ(out[15], -0.5f);
    EXPECT_EQ(out[31], -0.5f);
    EXPECT_EQ(out[2], -8.0f);  // all bits clear: 0 - 16
}

TEST(Dequantize, Q4_KBlock) {
    std::vector<std::uint8_t> block(144);
    put_half(&block[0], 1.0f);   // d
    put_half(&block[2], 0.5f);   // dmin
    // Sub-block 0: scale 3, min 2; sub-block 5 (packed form): scale 17, min 33.
    block[4 + 0] = 3;
    block[4 + 4] = 2;
    block[4 + 1] |= static_cast<std::uint8_t>((17 >> 4) << 6);  // high bits of scale 5
    block[4 + 5] |= static_cast<std::uint8_t>((33 >> 4) << 6);  // high bits of min 5
    block[4 + 9] = static_cast<std::uint8_t>((17 & 0xF) | ((33 & 0xF) << 4));
    block[16 + 0] = 0x05;        // element 0 (sub-block 0) = 5
    block[16 + 64] = 0x90;       // element 160 + 0 (sub-block 5, high nibbles of chunk 2) = 9
    const std::vector<float> out = dequantize(DType::Q4_K, block, 256);
    EXPECT_EQ(out[0], 3.0f * 5 - 0.5f * 2);
    EXPECT_EQ(out[1], -1.0f);
    EXPECT_EQ(out[160], 17.0f * 9 - 0.5f * 33);
}

TEST(Dequantize, Q6_KBlock) {
    std::vector<std::uint8_t> block(210);
    put_half(&block[208], 0.5f);
    for (int k = 0; k < 16; ++k) block[192 + k] = static_cast<std::uint8_t>(static_cast<std::int8_t>(k - 8));
    block[0] = 0x0F;        // element 0: low 4 bits 15, high bits 0 -> 15 - 32 = -17, scale[0] = -8
    block[128] = 0x03 << 6; // element 96: ql[32] high nibble 0, qh bits 6..7 = 3 -> 48 - 32 = 16, scale[6] = -2
    const std::vector<float> out = dequantize(DType::Q6_K, block, 256);
    EXPECT_EQ(out[0], 0.5f * -8 * -17);
    EXPECT_EQ(out[96], 0.5f * -2 * 16);
    EXPECT_EQ(out[16], 0.5f * -7 * -32);  // second 16 of the first quarter uses scale[1]
}

TEST(Dequantize, Mxfp4Block) {
    std::vector<std::uint8_t> block(17);
    block[0] = 128;  // e8m0 2^1, halved because the table values are doubled -> 1.0
    for (int j = 0; j < 16; ++j) block[1 + j] = static_cast<std::uint8_t>(j | (j << 4));
    const std::vector<float> out = dequantize(DType::MXFP4, block, 32);
    const float expected[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(out[j], expected[j]) << j;
        EXPECT_EQ(out[j + 16], expected[j]) << j;
    }
    block[0] = 0;  // smallest scale: 2^-128, a float32 subnormal
    EXPECT_EQ(dequantize(DType::MXFP4, block, 32)[1], std::bit_cast<float>(0x00200000u));
}

TEST(Dequantize, PlainTypes) {
    const std::vector<float> values = {1.5f, -2.0f, 65504.0f, 5.96046448e-8f, 0.0f};
    std::vector<std::uint8_t> f16(values.size() * 2);
    std::vector<std::uint8_t> bf16(values.size() * 2);
    std::vector<std::uint8_t> f32(values.size() * 4);
    for (std::size_t i = 0; i < values.size(); ++i) {
        put_half(&f16[2 * i], values[i]);
        const std::uint16_t b = fp32_to_bf16(values[i]);
        std::memcpy(&bf16[2 * i], &b, 2);
    }
    std::memcpy(f32.data(), values.data(), f32.size());
    EXPECT_EQ(dequantize(DType::F16, f16, 5), values);
    EXPECT_EQ(dequantize(DType::F32, f32, 5), values);
    EXPECT_EQ(dequantize(DType::BF16, bf16, 5)[0], 1.5f);
}

// Random blocks with finite fp16 scales at the given byte offsets of each block.
std::vector<std::uint8_t> random_blocks(std::mt19937& rng, DType type, std::int64_t n, std::vector<int> half_offsets) {
    const DTypeInfo& info = dtype_info(type);
    const auto blocks = static_cast<std::size_t>(n / info.block_size);
    std::vector<std::uint8_t> bytes(blocks * info.block_bytes + 1);  // +1: the caller offsets by one byte
    for (auto& byte : bytes) byte = static_cast<std::uint8_t>(rng());
    for (std::size_t b = 0; b < blocks; ++b) {
        for (const int offset : half_offsets) {
            std::uint16_t bits = static_cast<std::uint16_t>(rng());
            if ((bits & 0x7c00u) == 0x7c00u) bits &= 0x83ffu;  // Inf/NaN -> subnormal
            std::memcpy(&bytes[1 + b * info.block_bytes + offset], &bits, 2);
        }
    }
    return bytes;
}

TEST(Dequantize, FastPathsMatchTheScalarReference) {
    std::mt19937 rng(7);
    struct Case {
        DType type;
        std::vector<int> half_offsets;
    };
    const std::vector<Case> cases = {
        {DType::F16, {}}, {DType::Q4_0, {0}}, {DType::Q4_1, {0, 2}}, {DType::Q5_0, {0}}, {DType::Q8_0, {0}},
        {DType::Q4_K, {0, 2}}, {DType::Q6_K, {208}}, {DType::MXFP4, {}}, {DType::BF16, {}},
    };
    for (const Case& c : cases) {
        // 8192 + one block: covers SIMD bodies and, for F16, a scalar tail of odd length.
        const std::int64_t n = c.type == DType::F16 ? 8192 + 13 : 8192 + dtype_info(c.type).block_size;
        std::vector<std::uint8_t> bytes = random_blocks(rng, c.type, n, c.half_offsets);
        if (c.type == DType::F16 || c.type == DType::BF16) {
            // Plain halves: keep them finite so the comparison is about arithmetic, not NaN payloads.
            for (std::size_t i = 1; i + 1 < bytes.size(); i += 2) {
                if (c.type == DType::F16 && (bytes[i + 1] & 0x7c) == 0x7c) bytes[i + 1] &= 0x83;
                if (c.type == DType::BF16 && (bytes[i + 1] & 0x7f) == 0x7f && (bytes[i] & 0x80)) bytes[i + 1] &= 0x80;
            }
        }
        std::vector<float> fast(static_cast<std::size_t>(n));
        std::vector<float> scalar(static_cast<std::size_t>(n));
        // Source one byte past an aligned address: the kernels must not assume alignment.
        dequantize_row(c.type, bytes.data() + 1, fast.data(), n);
        detail::dequantize_row_scalar(c.type, bytes.data() + 1, scalar.data(), n);
        for (std::size_t i = 0; i < fast.size(); ++i) {
            ASSERT_EQ(std::bit_cast<std::uint32_t>(fast[i]), std::bit_cast<std::uint32_t>(scalar[i]))
                << dtype_name(c.type) << " element " << i;
        }
    }
}

TEST(Dequantize, RejectsBadArguments) {
    std::vector<std::uint8_t> bytes(1024);
    std::vector<float> out(256);
    EXPECT_THROW(dequantize_row(DType::Q5_1, bytes.data(), out.data(), 32), Error);
    EXPECT_THROW(dequantize_row(DType::I32, bytes.data(), out.data(), 4), Error);
    EXPECT_THROW(dequantize_row(DType::Q4_K, bytes.data(), out.data(), 32), Error);
    EXPECT_THROW(dequantize_row(DType::F32, bytes.data(), out.data(), -1), Error);
    EXPECT_NO_THROW(dequantize_row(DType::Q4_1, bytes.data(), out.data(), 0));
}

}  // namespace
}  // namespace kindred
