#include "core/dtype.h"

#include <cstdint>
#include <limits>
#include <vector>

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

TEST(DType, Nf4LayoutKeepsBitsandbytesStatePerTensor) {
    // 37 x 576: 333 blocks of 64, two nested groups (256 + 77 blocks).
    const Nf4Layout layout = nf4_layout(37 * 576);
    EXPECT_EQ(layout.blocks, 333u);
    EXPECT_EQ(layout.groups, 2u);
    EXPECT_EQ(layout.absmax_codes, 37u * 288u);              // after the packed codes
    EXPECT_EQ(layout.nested, (37u * 288u + 333u + 3) / 4 * 4);  // 4-byte aligned
    EXPECT_EQ(layout.bytes, layout.nested + 2 * 4 + 4);        // two nested scales and the offset
    EXPECT_EQ(row_bytes(DType::NF4, 576), 9u * 33u);
    EXPECT_EQ(matrix_bytes(DType::NF4, 37 * 576), layout.bytes);
    EXPECT_EQ(matrix_bytes(DType::Q4_1, 37 * 576), row_bytes(DType::Q4_1, 37 * 576));
    EXPECT_THROW(nf4_layout(96), Error);
    // A stack's matrices each carry their own scales; other types' tensors are their elements' bytes.
    const std::vector<std::int64_t> stack = {3, 37, 576}, matrix = {37, 576};
    EXPECT_EQ(tensor_bytes(DType::NF4, stack), 3 * layout.bytes);
    EXPECT_EQ(tensor_bytes(DType::NF4, matrix), layout.bytes);
    EXPECT_EQ(tensor_bytes(DType::Q4_1, stack), row_bytes(DType::Q4_1, 3 * 37 * 576));
}

}  // namespace
}  // namespace kindred
