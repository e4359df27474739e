// The MoE corpus (tests/corpus/gguf-moe-malformed/, written by tools/make_malformed_moe_gguf.py):
// valid GGUF containers whose MoE metadata or tensors disagree. Reading the config and binding
// every layer's MoE tensors must fail with kindred::Error naming the key or tensor at fault.
// (Broken MXFP4 pairs of HF checkpoints: tests/formats/test_hf_mxfp4.cpp; partial MXFP4 blocks in
// GGUF are refused by the reader: tests/corpus/gguf-malformed/row-not-block-multiple.)
#include <filesystem>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "model/moe_weights.h"
#include "model/weights.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

const std::map<std::string, std::string>& expected_phrases() {
    static const std::map<std::string, std::string> phrases = {
        {"top-k-above-experts", "qwen3moe.expert_used_count = 5 is outside [1, 4] (qwen3moe.expert_count)"},
        {"zero-experts", "gpt-oss.expert_count = 0"},
        {"expert-count-mismatch", "tensor 'blk.0.ffn_gate_exps.weight' has shape [3, 8, 16], expected [4, 8, 16]"},
        {"wrong-expert-shape", "tensor 'blk.0.ffn_down_exps.weight' has shape [4, 8, 16], expected [4, 16, 8]"},
        {"router-expert-mismatch", "tensor 'blk.0.ffn_gate_inp.weight' has shape [5, 16], expected [4, 16]"},
        {"missing-router", "tensor 'blk.0.ffn_gate_inp.weight' is missing"},
        {"missing-expert-bias", "tensor 'blk.0.ffn_up_exps.bias' is missing"},
    };
    return phrases;
}

TEST(MoeMalformed, EveryCorpusFileIsRefusedNamingTheKeyOrTensor) {
    const std::filesystem::path corpus = testing::source_path("tests/corpus/gguf-moe-malformed");
    std::size_t seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
        if (entry.path().extension() != ".gguf") continue;
        ++seen;
        const std::string stem = entry.path().stem().string();
        const auto expected = expected_phrases().find(stem);
        ASSERT_NE(expected, expected_phrases().end()) << "no expected message for corpus file " << stem;
        try {
            const auto file = gguf::File::open(entry.path().string());
            const ModelConfig config = model_config_from_gguf(file);
            const Weights weights = load_weights(file);
            for (std::int64_t layer = 0; layer < config.num_layers; ++layer) (void)bind_moe_weights(weights, config, layer);
            ADD_FAILURE() << stem << ": accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_EQ(message.rfind(entry.path().string() + ": ", 0), 0u) << stem << ": " << message;
            EXPECT_NE(message.find(expected->second), std::string::npos) << stem << ": " << message;
        }
    }
    EXPECT_EQ(seen, expected_phrases().size()) << "corpus files missing";
}

}  // namespace
}  // namespace kindred::model
