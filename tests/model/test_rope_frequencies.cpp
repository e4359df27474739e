// YaRN rotary frequencies and attention factor against transformers' _compute_yarn_parameters
// (tests/goldens/moe_kernels/yarn.json, tools/goldens/moe_kernels.py): gpt-oss's config
// (truncate false), a truncated Qwen-style one, and one with an explicit attention_factor and
// non-default betas.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/family.h"
#include "model/rope_frequencies.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

TEST(YarnRope, FrequenciesAndAttentionFactorMatchTransformers) {
    std::ifstream in(testing::source_path("tests/goldens/moe_kernels/yarn.json"));
    const auto golden = nlohmann::json::parse(in);
    for (const auto& c : golden["cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        ModelConfig config;
        config.head_dim = c["head_dim"];
        config.rope_theta = c["rope_theta"];
        config.rope_scaling.type = RopeScalingType::Yarn;
        config.rope_scaling.factor = c["factor"];
        config.rope_scaling.original_max_position_embeddings = c["original_max_position_embeddings"];
        config.rope_scaling.beta_fast = c["beta_fast"];
        config.rope_scaling.beta_slow = c["beta_slow"];
        config.rope_scaling.truncate = c["truncate"];
        config.rope_scaling.attention_factor = c["attention_factor_given"].is_null() ? 0.0 : c["attention_factor_given"].get<double>();
        const auto inv = rope_frequencies(config, "test");
        const auto expected = c["inv_freq"].get<std::vector<float>>();
        ASSERT_EQ(inv.size(), expected.size());
        // The same fp32 operations in the same order as torch: equal up to the last bit of pow
        // (glibc's powf and torch's vectorised pow may differ by one ulp).
        for (std::size_t i = 0; i < inv.size(); ++i)
            EXPECT_NEAR(inv[i], expected[i], 2e-7 * std::abs(expected[i])) << "frequency " << i;
        EXPECT_FLOAT_EQ(rope_attention_factor(config), c["attention_factor"].get<float>());
    }
}

TEST(YarnRope, OtherScalingsHaveNoAttentionFactor) {
    ModelConfig config;
    config.head_dim = 8;
    EXPECT_EQ(rope_attention_factor(config), 1.0f);
    config.rope_scaling.type = RopeScalingType::Yarn;
    config.rope_scaling.factor = 1.0;
    EXPECT_EQ(rope_attention_factor(config), 1.0f);
}

// The model spec both decoders run carries YaRN's attention factor into the rope table (cos and sin
// are multiplied by it), with the scaled frequencies.
TEST(YarnRope, ModelSpecCarriesTheAttentionFactor) {
    ModelConfig config;
    config.architecture = Architecture::Qwen3;
    config.vocab_size = 8;
    config.hidden_size = 16;
    config.intermediate_size = 32;
    config.num_layers = 1;
    config.num_heads = 2;
    config.num_kv_heads = 1;
    config.head_dim = 8;
    config.context_length = 64;
    config.qk_norm = true;
    config.layer_types = {LayerAttention::Full};
    config.rope_scaling.type = RopeScalingType::Yarn;
    config.rope_scaling.factor = 4.0;
    config.rope_scaling.original_max_position_embeddings = 16;
    const ModelSpec spec = resolve_model_spec(config, false, "test");
    ASSERT_EQ(spec.rope.size(), 1u);
    EXPECT_FLOAT_EQ(spec.rope[0].attention_factor, static_cast<float>(0.1 * std::log(4.0) + 1.0));
    EXPECT_EQ(spec.rope[0].inverse_frequencies, rope_frequencies(config, "test"));
}

}  // namespace
}  // namespace kindred::model
