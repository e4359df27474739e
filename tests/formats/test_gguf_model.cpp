#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "kernels/dequantize.h"
#include "test_paths.h"

namespace kindred::gguf {
namespace {

TEST(GgufModel, OpensTheDefaultModel) {
    const File file = File::open(testing::default_model_path());
    EXPECT_EQ(file.version(), 3u);
    const Metadata& metadata = file.metadata();
    EXPECT_EQ(metadata.string("general.architecture"), "llama");
    EXPECT_EQ(metadata.uint("llama.block_count"), 30u);
    EXPECT_EQ(metadata.uint("llama.embedding_length"), 576u);
    EXPECT_EQ(metadata.uint("llama.attention.head_count"), 9u);
    EXPECT_EQ(metadata.uint("llama.attention.head_count_kv"), 3u);
    EXPECT_EQ(metadata.uint("llama.vocab_size"), 49152u);
    EXPECT_EQ(metadata.string_array("tokenizer.ggml.tokens").size(), 49152u);
    EXPECT_EQ(metadata.array("tokenizer.ggml.merges").items.size(), 48900u);
    EXPECT_FLOAT_EQ(static_cast<float>(metadata.real("llama.rope.freq_base")), 100000.0f);
    EXPECT_EQ(file.tensors().size(), 272u);
    const TensorInfo& embedding = file.tensor("token_embd.weight");
    EXPECT_EQ(embedding.type, DType::Q8_0);
    EXPECT_EQ(embedding.dims, (std::vector<std::uint64_t>{576, 49152}));
    EXPECT_EQ(embedding.data.size(), 576u / 32u * 34u * 49152u);
    const TensorInfo& q = file.tensor("blk.0.attn_q.weight");
    EXPECT_EQ(q.type, DType::Q4_1);
    EXPECT_EQ(q.data.size(), 576u / 32u * 20u * 576u);
}

TEST(GgufModel, EveryTensorOfTheDefaultModelDequantizesToFiniteValues) {
    const File file = File::open(testing::default_model_path());
    std::vector<float> row;
    for (const TensorInfo& info : file.tensors()) {
        ASSERT_TRUE(dtype_info(info.type).dequantizable) << info.name;
        const std::uint64_t stride = row_bytes(info.type, info.dims[0]);
        const std::uint64_t rows = info.element_count() / info.dims[0];
        ASSERT_EQ(stride * rows, info.data.size()) << info.name;
        row.resize(info.dims[0]);
        for (std::uint64_t r = 0; r < rows; ++r) {
            dequantize_row(info.type, info.data.data() + r * stride, row.data(), static_cast<std::int64_t>(row.size()));
            for (const float value : row) ASSERT_TRUE(std::isfinite(value)) << info.name << " row " << r;
        }
    }
}

}  // namespace
}  // namespace kindred::gguf
