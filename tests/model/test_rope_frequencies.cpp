// YaRN rotary frequencies and attention factor against transformers' _compute_yarn_parameters
// (tests/goldens/moe_kernels/yarn.json, tools/goldens/moe_kernels.py): gpt-oss's config
// (truncate false), a truncated Qwen-style one, and one with an explicit attention_factor and
// non-default betas.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace kindred::model
