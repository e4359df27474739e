// Tests for train/ablate.h without training (the matrix itself runs by hand: `kindred ablate`): the
// recipe's checks, the variants, the table and the rows' JSON round trip the demo report reads.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "tiny_sft_model.h"
#include "train/ablate.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

TEST(Ablate, VariantsAreTheSeedsMatrix) {
    std::vector<std::string> names;
    for (const auto& variant : ablation_variants()) names.push_back(variant.name);
    EXPECT_EQ(names, (std::vector<std::string>{"full", "no_emotion_head", "no_strategy_head", "no_safety_kl", "no_dpo"}));
    EXPECT_EQ(ablation_variants()[1].sft_overrides, std::vector<std::string>{"heads.emotion=false"});
    EXPECT_EQ(ablation_variants()[3].sft_overrides, std::vector<std::string>{"safety.enabled=false"});
    EXPECT_FALSE(ablation_variants()[4].dpo);
}

TEST(Ablate, RecipeIsChecked) {
    const auto dir = testing::fresh_dir("ablate_recipe");
    std::ofstream(dir / "sft.yaml") << "x: 1\n";
    std::ofstream(dir / "dpo.yaml") << "x: 1\n";
    const auto read = [&](const std::string& extra) {
        Config config = Config::parse("sft: " + (dir / "sft.yaml").string() + "\ndpo: " + (dir / "dpo.yaml").string() + "\n" + extra,
                                      "ablate.yaml");
        return read_ablation_settings(config);
    };
    const auto all = read("");
    EXPECT_EQ(all.variants.size(), 5u);
    EXPECT_EQ(read("variants: [no_dpo, full]\n").variants, (std::vector<std::string>{"full", "no_dpo"}));  // matrix order
    EXPECT_EQ(read("variants: [no_dpo]\n").variants, std::vector<std::string>{"no_dpo"});
    EXPECT_EQ(read("sft_overrides: [optimisation.max_steps=4]\n").sft_overrides,
              std::vector<std::string>{"optimisation.max_steps=4"});
    EXPECT_THROW(read("variants: [full, no_heads]\n"), Error);        // unknown
    EXPECT_THROW(read("variants: [no_emotion_head]\n"), Error);       // DPO variants need the full model's pairs
    EXPECT_THROW(read("variants: []\n"), Error);
    EXPECT_THROW(read("varients: [full]\n"), Error);                  // unknown key
    Config missing = Config::parse("sft: nowhere.yaml\ndpo: " + (dir / "dpo.yaml").string() + "\n", "ablate.yaml");
    EXPECT_THROW(read_ablation_settings(missing), Error);
    fs::remove_all(dir);
}

TEST(Ablate, TableAndRowsRoundTrip) {
    AblationRow full;
    full.variant = "full";
    full.dev.nll = 2.5;
    full.dev.emotion_macro_f1 = 0.125;
    full.preference_accuracy = 0.75;
    full.dpo = DpoDevMetrics{};
    full.dpo->batch.rewards_accuracies = 0.5;
    full.dpo->batch.rewards_margins = 0.03;
    full.dpo->preference_accuracy = 0.75;
    full.seconds = 61.0;
    AblationRow no_dpo;
    no_dpo.variant = "no_dpo";
    no_dpo.dev.nll = 2.4;
    no_dpo.reused = true;
    const auto table = ablation_table({full, no_dpo});
    ASSERT_EQ(table.rows.size(), 2u);
    EXPECT_EQ(table.rows[0][0], "full");
    EXPECT_EQ(table.rows[0][1], "2.5");
    EXPECT_EQ(table.rows[0][7], "0.5");
    EXPECT_EQ(table.rows[0][9], "61 s");
    EXPECT_EQ(table.rows[1][7], "—");  // no reward metrics without DPO
    EXPECT_EQ(table.rows[1][9], "reused");
    for (const auto& row : table.rows) EXPECT_EQ(row.size(), table.header.size());

    const auto back = ablation_row_from_json(to_json(full), "ablation.json");
    EXPECT_EQ(back.variant, "full");
    EXPECT_EQ(back.dev.nll, 2.5);
    EXPECT_EQ(back.preference_accuracy, 0.75);
    ASSERT_TRUE(back.dpo.has_value());
    EXPECT_EQ(back.dpo->batch.rewards_margins, 0.03);
    EXPECT_FALSE(ablation_row_from_json(to_json(no_dpo), "ablation.json").dpo.has_value());
    EXPECT_THROW(ablation_row_from_json(nlohmann::json::object(), "ablation.json"), Error);
}

TEST(Ablate, ExpectedTimeIsSaidFromTheMeasuredRowCost) {
    AblationPlan plan;
    plan.variants = 5;
    plan.sft_runs = 4;
    plan.dpo_runs = 4;
    plan.sft_steps = 100;
    plan.dpo_steps = 20;
    plan.sft_rows = 400;
    plan.dpo_rows = 80;
    const auto text = expected_time_text(plan, 3.0, 0.0);
    // 480 rows x 3 s x 1.1 = 1584 s = 26 min.
    EXPECT_NE(text.find("about 26 min"), std::string::npos) << text;
    EXPECT_NE(text.find("4 SFT runs of 100 steps"), std::string::npos) << text;
}

}  // namespace
}  // namespace kindred::train
