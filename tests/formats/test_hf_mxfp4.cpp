// HF MXFP4 blocks/scales repacked into ggml MXFP4 blocks (formats/hf_mxfp4.h) against transformers'
// own dequantization (tests/goldens/moe_kernels/hf_mxfp4.json, tools/goldens/moe_kernels.py), and
// the malformed pairs it must refuse. The ggml blocks are decoded here by their definition
// (e2m1 code of element j in byte j's low nibble, j + 16 in its high nibble, times 2^(e − 127)),
// so an exact match shows the repacking kept every value.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/hf_mxfp4.h"
#include "test_paths.h"

namespace kindred {
namespace {

constexpr float e2m1[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                            -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

float ggml_mxfp4_value(const std::uint8_t* row, std::int64_t i) {
    const std::uint8_t* block = row + (i / 32) * 17;
    const int j = static_cast<int>(i % 32);
    const int code = j < 16 ? block[1 + j] & 0x0F : block[1 + j - 16] >> 4;
    return std::ldexp(e2m1[code], block[0] - 127);
}

safetensors::TensorInfo u8(const char* name, std::vector<std::uint64_t> shape, const std::vector<std::uint8_t>& data) {
    safetensors::TensorInfo info;
    info.name = name;
    info.type = DType::U8;
    info.shape = std::move(shape);
    info.data = data;
    return info;
}

TEST(HfMxfp4, RepackedBlocksHoldTransformersValues) {
    std::ifstream in(testing::source_path("tests/goldens/moe_kernels/hf_mxfp4.json"));
    const auto golden = nlohmann::json::parse(in);
    const std::uint64_t experts = golden["experts"], rows = golden["rows"], cols = golden["cols"];
    const auto block_bytes = golden["blocks"].get<std::vector<std::uint8_t>>();
    const auto scale_bytes = golden["scales"].get<std::vector<std::uint8_t>>();
    const auto values = golden["values"].get<std::vector<float>>();
    const auto blocks = u8("w_blocks", {experts, rows, cols / 32, 16}, block_bytes);
    const auto scales = u8("w_scales", {experts, rows, cols / 32}, scale_bytes);
    // All rows, then the interleaved halves (gpt-oss's gate_up: gate rows even, up rows odd).
    for (const auto& [first, step] : {std::pair{0, 1}, std::pair{0, 2}, std::pair{1, 2}}) {
        SCOPED_TRACE(::testing::Message() << "first=" << first << " step=" << step);
        const Mxfp4Stack stack = mxfp4_from_hf(blocks, scales, first, step, "test");
        ASSERT_EQ(stack.experts, static_cast<std::int64_t>(experts));
        ASSERT_EQ(stack.rows, static_cast<std::int64_t>(rows) / step);
        ASSERT_EQ(stack.cols, static_cast<std::int64_t>(cols));
        const std::int64_t row_bytes = stack.cols / 32 * 17;
        for (std::int64_t e = 0; e < stack.experts; ++e)
            for (std::int64_t r = 0; r < stack.rows; ++r)
                for (std::int64_t c = 0; c < stack.cols; ++c) {
                    const float got = ggml_mxfp4_value(stack.bytes.data() + (e * stack.rows + r) * row_bytes, c);
                    const std::size_t at = static_cast<std::size_t>(
                        (e * static_cast<std::int64_t>(rows) + first + r * step) * stack.cols + c);
                    ASSERT_EQ(got, values[at]) << "expert " << e << " row " << r << " col " << c;
                }
    }
}

TEST(HfMxfp4, RefusesMalformedPairsNamingTheTensor) {
    const std::vector<std::uint8_t> block_bytes(2 * 3 * 1 * 16, 0x21), scale_bytes(2 * 3, 127);
    const auto blocks = u8("gate_up_proj_blocks", {2, 3, 1, 16}, block_bytes);
    const auto scales = u8("gate_up_proj_scales", {2, 3, 1}, scale_bytes);
    auto message = [](auto&& call) {
        try {
            call();
        } catch (const Error& error) {
            return std::string(error.what());
        }
        return std::string("no error");
    };
    // Three rows cannot be gate/up interleaved.
    EXPECT_NE(message([&] { mxfp4_from_hf(blocks, scales, 0, 2, "model"); }).find("gate_up_proj_blocks"), std::string::npos);
    const auto short_scales = u8("gate_up_proj_scales", {2, 2, 1}, scale_bytes);
    EXPECT_NE(message([&] { mxfp4_from_hf(blocks, short_scales, 0, 1, "model"); }).find("gate_up_proj_scales"),
              std::string::npos);
    auto wrong_type = blocks;
    wrong_type.type = DType::BF16;
    EXPECT_NE(message([&] { mxfp4_from_hf(wrong_type, scales, 0, 1, "model"); }).find("expected U8"), std::string::npos);
    std::vector<std::uint8_t> nan_scales = scale_bytes;
    nan_scales[4] = 0xFF;
    const auto bad = u8("down_proj_scales", {2, 3, 1}, nan_scales);
    EXPECT_NE(message([&] { mxfp4_from_hf(blocks, bad, 0, 1, "model"); }).find("down_proj_scales' expert 1 row 1 block 0"),
              std::string::npos);
}

}  // namespace
}  // namespace kindred
