// infer::LoadedModel over a Hugging Face checkpoint directory (config.json, safetensors,
// tokenizer.json, tokenizer_config.json), with and without quantizing the base at load, and the
// refusals a user meets: a directory that is not a checkpoint, a quantization of a GGUF whose
// weights are already quantized.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "infer/loaded_model.h"
#include "infer/score.h"
#include "model/bf16_checkpoint.h"
#include "scratch_dir.h"
#include "test_paths.h"
#include "text/unicode.h"

namespace kindred::infer {
namespace {

// A byte-level tokenizer of the 256 bytes (no merges) beside the bf16 checkpoint, vocabulary 256.
void write_checkpoint(const testing::ScratchDir& dir) {
    testing::write_bf16_llama(dir.path().string(), 256);
    nlohmann::json vocab = nlohmann::json::object();
    const text::ByteLevelTable& table = text::byte_level_table();
    for (int b = 0; b < 256; ++b) {
        std::string piece;
        text::utf8_append(piece, table.byte_to_code_point[static_cast<std::size_t>(b)]);
        vocab[piece] = b;
    }
    const nlohmann::json tokenizer{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
                                   {"normalizer", nullptr},
                                   {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}},
                                   {"added_tokens", nlohmann::json::array()},
                                   {"decoder", {{"type", "ByteLevel"}}}};
    std::ofstream(dir / "tokenizer.json") << tokenizer.dump();
    std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": false})";
}

TEST(LoadedModelCheckpoint, OpensAnHfDirectoryAndQuantizesItsBase) {
    const testing::ScratchDir dir("kindred-hf-model");
    write_checkpoint(dir);
    const std::string text = "a quantized base still scores a sentence";
    double perplexity[3] = {};
    int at = 0;
    for (const auto quantization : {model::BaseQuantization::None, model::BaseQuantization::Q4_K, model::BaseQuantization::NF4}) {
        const auto loaded = LoadedModel::open(dir.path().string(), "", quantization);
        const DType expected = quantization == model::BaseQuantization::None   ? DType::BF16
                               : quantization == model::BaseQuantization::Q4_K ? DType::Q4_K
                                                                               : DType::NF4;
        EXPECT_EQ(loaded->decoder().weights().get("blk.1.ffn_down.weight").type, expected);
        EXPECT_EQ(loaded->decoder().weights().get("token_embd.weight").type, DType::BF16);
        const std::vector<std::int32_t> ids = loaded->encode_raw(text);
        ASSERT_EQ(ids.size(), text.size());  // one token per byte, no BOS (add_bos_token false)
        perplexity[at++] = score_tokens(loaded->decoder(), ids, 0).perplexity;
    }
    std::printf("perplexity: bf16 %.3f, q4_k %.3f, nf4 %.3f\n", perplexity[0], perplexity[1], perplexity[2]);
    // Random weights: perplexity near the vocabulary size, and the 4-bit bases' logits stay within
    // tests/model/test_quantize_weights.cpp's bounds, so perplexity moves little; asserted 5%.
    EXPECT_NEAR(perplexity[1], perplexity[0], 0.05 * perplexity[0]);
    EXPECT_NEAR(perplexity[2], perplexity[0], 0.05 * perplexity[0]);
}

TEST(LoadedModelCheckpoint, RefusesADirectoryWithoutTheCheckpointFiles) {
    const testing::ScratchDir dir("kindred-hf-model");
    write_checkpoint(dir);
    std::remove((dir / "tokenizer.json").c_str());
    try {
        LoadedModel::open(dir.path().string());
        FAIL() << "a checkpoint without tokenizer.json opened";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("tokenizer.json is missing"), std::string::npos) << error.what();
    }
}

TEST(LoadedModelCheckpoint, RefusesAMistypedAddBosTokenNamingTheFile) {
    const testing::ScratchDir dir("kindred-hf-model");
    write_checkpoint(dir);
    std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": "yes"})";
    try {
        LoadedModel::open(dir.path().string());
        FAIL() << "add_bos_token \"yes\" accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("tokenizer_config.json"), std::string::npos) << message;
        EXPECT_NE(message.find("add_bos_token"), std::string::npos) << message;
    }
}

TEST(LoadedModelCheckpoint, RefusesToQuantizeAQuantizedGguf) {
    EXPECT_THROW(LoadedModel::open(testing::default_model_path(), "", model::BaseQuantization::Q4_K), Error);
}

}  // namespace
}  // namespace kindred::infer
