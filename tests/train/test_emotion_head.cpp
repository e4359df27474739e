// The emotion head's training options (train/sft.h, docs/training.md) on the random tiny Llama:
// class weights by hand; a sigmoid head and a rebalanced softmax head learn, and the threshold
// chosen on dev and the examples' system message are written with the head; partial fine-tuning
// from the frozen-layer cache (train/frozen_cache.h) follows the run without it, reuses its shards
// and reports a corrupt one; the recipe keys and their errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "formats/peft_adapter.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "tiny_sft_model.h"
#include "train/frozen_cache.h"
#include "train/recipe.h"
#include "train/sft.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::options_for;
using testing::tiny;
using testing::tiny_recipe;

// Emotion-only examples as GoEmotions comments look after tokenization: a few prompt tokens, the
// comment, the site at the last token. The class c is written into the comment (token 70 + c):
// c = 0 for half the examples (e % 8 < 4), else e % 5, so class 0 dominates and rebalancing has
// something to do; every fourth example also carries label c + 1.
std::vector<TokenizedExample> emotion_examples(int count) {
    std::vector<TokenizedExample> examples;
    for (int e = 0; e < count; ++e) {
        const int c = e % 8 < 4 ? 0 : e % 5;
        TokenizedExample example;
        example.tokens = {1, 9, 2, 70 + c, 10 + e % 13, 70 + c, 3};
        for (int t = 0; t < e % 4; ++t) example.tokens.insert(example.tokens.end() - 1, 20 + (e + t) % 30);
        example.targets.assign(example.tokens.size(), kIgnoreTarget);
        HeadSite site;
        site.position = static_cast<std::int32_t>(example.tokens.size() - 1);
        site.emotions = {c};
        if (e % 4 == 3) site.emotions.push_back(c + 1);
        example.sites.push_back(site);
        example.source = "goemotions";
        example.multi_label = true;
        example.line = static_cast<std::size_t>(e + 1);
        examples.push_back(std::move(example));
    }
    return examples;
}

SftRecipe emotion_recipe(const fs::path& dir) {
    SftRecipe recipe = tiny_recipe();
    recipe.objective = {0.0, 1.0, 0.0, 0.0, 0.0};
    recipe.heads.emotion_space = data::EmotionSpace::GoEmotions;
    recipe.heads.lr_multiplier = 5.0;
    recipe.output_dir = dir.string();
    recipe.max_steps = 30;
    recipe.checkpoint_every = 10;
    return recipe;
}

double mean(const std::vector<double>& values, std::size_t begin, std::size_t end) {
    double sum = 0.0;
    for (std::size_t i = begin; i < end; ++i) sum += values[i];
    return sum / static_cast<double>(end - begin);
}

TEST(EmotionClassWeights, InverseAndSquareRootFrequencyKeepTheMeanWeightOverLabelsAtOne) {
    // Labels: class 0 six times, class 1 twice, class 2 never (4 classes; class 3 once).
    const auto site = [](std::vector<std::int32_t> emotions) {
        HeadSite out;
        out.emotions = std::move(emotions);
        return out;
    };
    std::vector<TokenizedExample> examples(3);
    examples[0].sites = {site({0, 1}), site({0})};
    examples[1].sites = {site({0}), site({0, 3})};
    examples[2].sites = {site({0, 1}), site({0})};
    EXPECT_TRUE(emotion_class_weights(examples, 4, EmotionRebalance::None).empty());
    // 1/n: raw (1/6, 1/2, -, 1); Σ n·raw = 3 over 9 occurrences: w = raw · 3.
    const auto inverse = emotion_class_weights(examples, 4, EmotionRebalance::InverseFrequency);
    ASSERT_EQ(inverse.size(), 4u);
    EXPECT_FLOAT_EQ(inverse[0], 0.5f);
    EXPECT_FLOAT_EQ(inverse[1], 1.5f);
    EXPECT_FLOAT_EQ(inverse[2], 1.0f);  // never seen: 1
    EXPECT_FLOAT_EQ(inverse[3], 3.0f);
    // 1/√n: Σ n·raw = √6 + √2 + 1 over 9 occurrences.
    const auto root = emotion_class_weights(examples, 4, EmotionRebalance::SqrtInverseFrequency);
    const double scale = 9.0 / (std::sqrt(6.0) + std::sqrt(2.0) + 1.0);
    EXPECT_FLOAT_EQ(root[0], static_cast<float>(scale / std::sqrt(6.0)));
    EXPECT_FLOAT_EQ(root[1], static_cast<float>(scale / std::sqrt(2.0)));
    EXPECT_FLOAT_EQ(root[3], static_cast<float>(scale));
    examples[2].sites[0].emotions = {4};
    EXPECT_THROW(emotion_class_weights(examples, 4, EmotionRebalance::InverseFrequency), Error);
}

// Both heads learn the class from the comment token; the sigmoid head's folder says so and carries
// the threshold chosen on dev and the examples' system message for `kindred eval emotion`.
TEST(EmotionHead, SigmoidAndRebalancedSoftmaxHeadsLearnAndRecordTheirDecisionRule) {
    const auto examples = emotion_examples(48);
    const auto dev = emotion_examples(20);
    for (const auto activation : {model::EmotionActivation::Sigmoid, model::EmotionActivation::Softmax}) {
        const auto dir = fresh_dir(std::string("emotion_") + model::emotion_activation_name(activation));
        SftRecipe recipe = emotion_recipe(dir);
        recipe.heads.emotion_activation = activation;
        if (activation == model::EmotionActivation::Softmax) recipe.heads.emotion_rebalance = EmotionRebalance::InverseFrequency;
        SftOptions options = options_for(dir / "run");
        options.dev = dev;
        options.emotion_system_prompt = "Name the emotions.";
        const SftResult result = run_sft(recipe, tiny(), examples, options);
        ASSERT_TRUE(result.finished);
        EXPECT_LT(mean(result.losses, 24, 30), 0.8 * mean(result.losses, 0, 6)) << model::emotion_activation_name(activation);
        ASSERT_TRUE(result.final_dev.has_value());
        EXPECT_GT(result.final_dev->emotion_threshold_macro_f1, 0.0);
        const auto loaded = model::read_heads_with_labels((dir / "run" / "adapter").string(), tiny().config().hidden_size);
        EXPECT_EQ(loaded.emotion_labels.size(), 28u);  // the GoEmotions space
        EXPECT_EQ(loaded.emotion_labels.front(), "admiration");
        EXPECT_EQ(loaded.heads.config().emotion_activation, activation);
        EXPECT_DOUBLE_EQ(loaded.heads.config().emotion_threshold, result.final_dev->emotion_threshold);
        EXPECT_EQ(loaded.heads.config().emotion_system_prompt, "Name the emotions.");
        fs::remove_all(dir);
    }
}

// adapter.first_layer = 1 on the 2-layer model: the run from the cache of layer 0's output follows
// the run that computes layer 0 every step. The cached residuals come from rows packed in example
// order, the training rows from the shuffled packer, so the products sum in another sgemm order
// (~1e-6 relative per residual); over 10 AdamW steps the losses stay within 1e-4 relative.
TEST(FrozenLayerCache, PartialFineTuningFromTheCacheFollowsTheRunWithoutIt) {
    const auto examples = emotion_examples(40);
    const auto dev = emotion_examples(12);
    std::vector<std::vector<double>> losses;
    const auto dir = fresh_dir("frozen_cache_follow");
    for (const bool cache : {false, true}) {
        SftRecipe recipe = emotion_recipe(dir);
        recipe.adapter.first_layer = 1;
        recipe.max_steps = 10;
        recipe.cache_frozen_layers = cache;
        SftOptions options = options_for(dir / (cache ? "cached" : "plain"));
        options.dev = dev;
        const SftResult result = run_sft(recipe, tiny(), examples, options);
        losses.push_back(result.losses);
        EXPECT_TRUE(result.final_dev.has_value());
        // The adapter folder lists only the trained layer.
        const auto adapter = peft::read_adapter((dir / (cache ? "cached" : "plain") / "adapter").string());
        EXPECT_EQ(adapter.config.layers_to_transform, std::vector<std::uint32_t>{1});
    }
    ASSERT_EQ(losses[0].size(), losses[1].size());
    for (std::size_t i = 0; i < losses[0].size(); ++i) EXPECT_NEAR(losses[1][i], losses[0][i], 1e-4 * losses[0][i]) << i;
    std::size_t shards = 0;
    for (const auto& entry : fs::directory_iterator(dir / "frozen-cache")) shards += entry.path().extension() == ".residuals";
    EXPECT_EQ(shards, 2u);  // the training set's and the dev set's
    fs::remove_all(dir);
}

TEST(FrozenLayerCache, ShardsAreReusedAndACorruptOneIsReported) {
    const auto examples = emotion_examples(10);
    model::LoraConfig lora;
    lora.rank = 2;
    lora.first_layer = 1;
    model::LoraAdapters adapters(tiny().config(), lora, false);
    model::TrainableDecoder trainer(tiny(), adapters, false, 48);
    const auto dir = fresh_dir("frozen_cache_reuse");
    FrozenCacheOptions options;
    options.dir = dir.string();
    options.model_identity = "tiny-llama";
    options.precision = "fp32";
    options.max_seq_len = 48;
    options.progress = false;
    const auto built = FrozenResiduals::open_or_build(trainer, examples, 1, options);
    EXPECT_EQ(built.built_shards(), 1u);
    ASSERT_EQ(built.examples(), examples.size());
    // An example's block is what residual_entering gives for it alone (one row of its own tokens:
    // other rows' sgemm blocking, hence a tolerance of 1e-5 of the block's largest value).
    model::TrainBatch alone;
    alone.tokens = examples[3].tokens;
    alone.targets = examples[3].targets;
    const auto expected = trainer.residual_entering(alone, 1);
    const auto block = built.residual(3);
    ASSERT_EQ(block.size(), expected.size());
    float largest = 0.0f;
    for (const float x : expected) largest = std::max(largest, std::fabs(x));
    for (std::size_t i = 0; i < block.size(); ++i) EXPECT_NEAR(block[i], expected[i], 1e-5f * largest) << i;

    const auto reused = FrozenResiduals::open_or_build(trainer, examples, 1, options);
    EXPECT_EQ(reused.built_shards(), 0u);
    // Other tokens are another cache (a new fingerprint), not a stale read of this one.
    auto changed = examples;
    changed[0].tokens[1] = 11;
    EXPECT_EQ(FrozenResiduals::open_or_build(trainer, changed, 1, options).built_shards(), 1u);
    // A truncated shard is reported by name and never silently replaced.
    const std::string path = reused.path();
    fs::resize_file(path, fs::file_size(path) - 4);
    try {
        FrozenResiduals::open_or_build(trainer, examples, 1, options);
        FAIL() << "a truncated shard was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
    }
    EXPECT_THROW(FrozenResiduals::open_or_build(trainer, examples, 0, options), Error);  // nothing frozen below 0
    fs::remove_all(dir);
}

TEST(EmotionRecipe, KeysAndTheirErrors) {
    const auto dir = fresh_dir("emotion_recipe");
    const std::string data = (dir / "train.jsonl").string();
    std::ofstream(data) << "{}\n";
    const auto read = [&](const std::vector<std::string>& overrides) {
        Config config = Config::parse("data:\n  path: " + data + "\noptimisation:\n  max_steps: 3\n", "recipe.yaml");
        config.apply_overrides(overrides);
        return read_sft_recipe(config);
    };
    const SftRecipe defaults = read({});
    EXPECT_EQ(defaults.adapter.first_layer, 0);
    EXPECT_TRUE(defaults.cache_frozen_layers);
    EXPECT_EQ(defaults.heads.emotion_space, data::EmotionSpace::Kindred);
    EXPECT_EQ(defaults.heads.emotion_activation, model::EmotionActivation::Softmax);
    EXPECT_EQ(defaults.heads.emotion_rebalance, EmotionRebalance::None);
    const SftRecipe set = read({"adapter.first_layer=24", "optimisation.cache_frozen_layers=false",
                                "heads.emotion_labels=goemotions", "heads.emotion_loss=sigmoid",
                                "heads.emotion_rebalance=sqrt_inverse_frequency"});
    EXPECT_EQ(set.adapter.first_layer, 24);
    EXPECT_FALSE(set.cache_frozen_layers);
    EXPECT_EQ(set.heads.emotion_space, data::EmotionSpace::GoEmotions);
    EXPECT_EQ(set.heads.emotion_activation, model::EmotionActivation::Sigmoid);
    EXPECT_EQ(set.heads.emotion_rebalance, EmotionRebalance::SqrtInverseFrequency);
    for (const char* bad : {"adapter.first_layer=-1", "heads.emotion_labels=ekman", "heads.emotion_loss=focal",
                            "heads.emotion_rebalance=resample"}) {
        try {
            read({bad});
            FAIL() << bad << " was accepted";
        } catch (const Error& error) {
            const std::string key(bad, std::string_view(bad).find('='));
            EXPECT_NE(std::string(error.what()).find(key), std::string::npos) << error.what();
        }
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace kindred::train
