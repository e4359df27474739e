#include "core/dtype.h"

#include <cstdint>
#include <limits>

#include <gtest/gtest.h>

#include "core/error.h"

namespace kindred {
namespace {

TEST(DType, GgmlIdsMatchTheEnum) {
    // Spot checks against ggml.h's enum ggml_type.
    EXPECT_EQ(dtype_from_ggml_id(0), DType::F32);
    EXPECT_EQ(dtype_from_ggml_id(3), DType::Q4_1);
    EXPECT_EQ(dtype_from_ggml_id(12), DType::Q4_K);
    EXPECT_EQ(dtype_from_ggml_id(14), DType::Q6_K);
    EXPECT_EQ(dtype_from_ggml_id(30), DType::BF16);
    EXPECT_EQ(dtype_from_ggml_id(39), DType::MXFP4);
}

TEST(DType, UnknownIdsThrow) {
    for (const std::uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u, 0x10000u}) {
        EXPECT_THROW(dtype_from_ggml_id(id), Error) << id;
    }
    EXPECT_THROW(dtype_info(static_cast<DType>(77)), Error);
}

TEST(DType, BlockLayouts) {
    EXPECT_EQ(dtype_info(DType::Q4_1).block_size, 32u);
    EXPECT_EQ(dtype_info(DType::Q4_1).block_bytes, 20u);
    EXPECT_EQ(dtype_info(DType::Q8_0).block_bytes, 34u);
    EXPECT_EQ(dtype_info(DType::Q4_K).block_bytes, 144u);
    EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, 210u);
    EXPECT_EQ(dtype_info(DType::MXFP4).block_bytes, 17u);
    EXPECT_TRUE(is_quantized(DType::Q4_0));
    EXPECT_FALSE(is_quantized(DType::BF16));
}

TEST(DType, NamesRoundTrip) {
    for (const DType type : {DType::F32, DType::F16, DType::BF16, DType::Q4_1, DType::Q6_K, DType::U8, DType::I64}) {
        EXPECT_EQ(dtype_from_name(dtype_name(type)), type);
    }
    EXPECT_EQ(dtype_from_name("BOOL"), std::nullopt);
}

TEST(DType, RowBytes) {
    EXPECT_EQ(row_bytes(DType::F32, 7), 28u);
    EXPECT_EQ(row_bytes(DType::Q4_1, 576), 18u * 20u);
    EXPECT_EQ(row_bytes(DType::Q6_K, 512), 420u);
    EXPECT_THROW(row_bytes(DType::Q4_1, 33), Error);
    EXPECT_THROW(row_bytes(DType::F64, std::numeric_limits<std::uint64_t>::max() / 4), Error);
}

}  // namespace
}  // namespace kindred
