// Tests for the multi-objective keys of train/recipe.h: objective.*, heads.*, safety.*,
// evaluation.*, data.dev_path — defaults that keep plain recipes plain, ablation switches folded
// into the weights, and range errors naming the key and its line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "core/config.h"
#include "core/error.h"
#include "train/recipe.h"
#include "train/safety_teacher.h"
#include "tiny_sft_model.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

class RecipeKeys : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = testing::fresh_dir("recipe_keys");
        data_ = (dir_ / "train.jsonl").string();
        dev_ = (dir_ / "dev.jsonl").string();
        std::ofstream(data_) << "{}\n";
        std::ofstream(dev_) << "{}\n";
    }
    void TearDown() override { fs::remove_all(dir_); }
    // The data section (lines 1-3), max_steps (4-5), then `rest`, whose first line is line 6.
    std::string yaml(const std::string& rest) const {
        return fmt::format("data:\n  path: {}\n  dev_path: {}\noptimisation:\n  max_steps: 5\n", data_, dev_) + rest;
    }
    SftRecipe read(const std::string& rest) const {
        auto config = Config::parse(yaml(rest), "recipe.yaml");
        return read_sft_recipe(config);
    }
    // The Error message reading `rest`; fails the test when it does not throw.
    std::string error(const std::string& rest) const {
        try {
            read(rest);
        } catch (const Error& e) {
            return e.what();
        }
        ADD_FAILURE() << "expected an Error for:\n" << rest;
        return {};
    }
    fs::path dir_;
    std::string data_, dev_;
};

TEST_F(RecipeKeys, DefaultsKeepAPlainRecipePlain) {
    const auto recipe = read("");
    EXPECT_EQ(recipe.dev_path, dev_);
    EXPECT_EQ(recipe.objective.lm, 1.0);
    EXPECT_EQ(recipe.objective.emotion, 0.0);
    EXPECT_EQ(recipe.objective.strategy, 0.0);
    EXPECT_EQ(recipe.objective.valence_arousal, 0.0);
    EXPECT_EQ(recipe.objective.safety_kl, 0.0);
    EXPECT_FALSE(any_head_active(recipe));
    EXPECT_FALSE(safety_active(recipe));
    EXPECT_EQ(safety_rules_text(recipe), "");
    EXPECT_EQ(recipe.safety.temperature, 2.0);
    EXPECT_EQ(recipe.safety.top_k, 32);
    EXPECT_EQ(recipe.evaluation.every, 0);
    EXPECT_EQ(recipe.evaluation.max_examples, 0);
    // The resolved recipe spells out every default, so a run's config.yaml shows the whole objective.
    for (const char* key : {"objective:", "safety_kl: 0", "heads:", "valence_arousal: true", "top_k: 32", "every: 0"})
        EXPECT_NE(recipe.resolved_yaml.find(key), std::string::npos) << key;
}

TEST_F(RecipeKeys, ReadsTheMultiObjectiveSections) {
    const auto recipe = read(
        "objective:\n  lm: 0.5\n  emotion: 0.25\n  strategy: 0.75\n  valence_arousal: 2\n  safety_kl: 0.1\n"
        "safety:\n  temperature: 1.5\n  top_k: 8\n  rules: Be kind.\nevaluation:\n  every: 10\n  max_examples: 64\n");
    EXPECT_EQ(recipe.objective.lm, 0.5);
    EXPECT_EQ(recipe.objective.emotion, 0.25);
    EXPECT_EQ(recipe.objective.strategy, 0.75);
    EXPECT_EQ(recipe.objective.valence_arousal, 2.0);
    EXPECT_EQ(recipe.objective.safety_kl, 0.1);
    EXPECT_TRUE(emotion_active(recipe) && strategy_active(recipe) && valence_arousal_active(recipe));
    EXPECT_TRUE(safety_active(recipe));
    EXPECT_EQ(recipe.safety.temperature, 1.5);
    EXPECT_EQ(recipe.safety.top_k, 8);
    EXPECT_EQ(safety_rules_text(recipe), "Be kind.");
    EXPECT_EQ(recipe.evaluation.every, 10);
    EXPECT_EQ(recipe.evaluation.max_examples, 64);
    const auto defaults = read("objective:\n  safety_kl: 0.1\n");
    EXPECT_EQ(safety_rules_text(defaults), default_safety_rules());
}

TEST_F(RecipeKeys, SwitchesZeroTheirWeights) {
    const auto recipe = read(
        "objective:\n  emotion: 0.5\n  strategy: 0.5\n  valence_arousal: 0.5\n  safety_kl: 0.5\n"
        "heads:\n  emotion: false\n  strategy: true\n  valence_arousal: false\nsafety:\n  enabled: false\n");
    EXPECT_EQ(recipe.objective.emotion, 0.0);
    EXPECT_EQ(recipe.objective.strategy, 0.5);
    EXPECT_EQ(recipe.objective.valence_arousal, 0.0);
    EXPECT_EQ(recipe.objective.safety_kl, 0.0);
    EXPECT_FALSE(emotion_active(recipe));
    EXPECT_TRUE(strategy_active(recipe));
    EXPECT_FALSE(valence_arousal_active(recipe));
    EXPECT_FALSE(safety_active(recipe));
    EXPECT_EQ(safety_rules_text(recipe), "");
}

TEST_F(RecipeKeys, OutOfRangeValuesNameKeyAndLine) {
    struct Case {
        std::string rest;
        const char* key;
        const char* line;
    };
    const Case cases[] = {
        {"objective:\n  emotion: -0.5\n", "objective.emotion", "line 7"},
        {"objective:\n  lm: 1\n  safety_kl: .nan\n", "objective.safety_kl", "line 8"},
        {"objective:\n  strategy: 5000\n", "objective.strategy", "line 7"},
        {"safety:\n  temperature: 0\n", "safety.temperature", "line 7"},
        {"safety:\n  top_k: 0\n", "safety.top_k", "line 7"},
        {"safety:\n  top_k: 4096\n", "safety.top_k", "line 7"},
        {"safety:\n  rules: \"  \"\n", "safety.rules", "line 7"},
        {"evaluation:\n  every: -1\n", "evaluation.every", "line 7"},
        {"evaluation:\n  max_examples: -2\n", "evaluation.max_examples", "line 7"},
        {"heads:\n  emotion: maybe\n", "heads.emotion", "line 7"},
        {"objective:\n  emotoin: 0.5\n", "objective.emotoin", "line 7"},  // unknown key, with the did-you-mean
        {"model:\n  quantize: q4_k_m\n", "model.quantize", "line 7"},
    };
    for (const auto& c : cases) {
        const auto message = error(c.rest);
        EXPECT_NE(message.find(c.key), std::string::npos) << message;
        EXPECT_NE(message.find(c.line), std::string::npos) << message;
    }
    EXPECT_NE(error("objective:\n  emotoin: 0.5\n").find("objective.emotion"), std::string::npos);
}

TEST_F(RecipeKeys, NothingToTrainAndMissingDevFileAreErrors) {
    const auto nothing = error("objective:\n  lm: 0\n  emotion: 1\nheads:\n  emotion: false\n");
    EXPECT_NE(nothing.find("nothing would be trained"), std::string::npos) << nothing;
    auto config = Config::parse(fmt::format("data:\n  path: {}\n  dev_path: {}/missing.jsonl\noptimisation:\n  max_steps: 5\n",
                                            data_, dir_.string()),
                                "dev.yaml");
    try {
        read_sft_recipe(config);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("data.dev_path"), std::string::npos) << message;
        EXPECT_NE(message.find("line 3"), std::string::npos) << message;
    }
}

}  // namespace
}  // namespace kindred::train
