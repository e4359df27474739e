// `kindred data prepare` end to end: runs the built binary on the data fixtures and checks exit
// codes, error lines, shards and data cards.
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_kindred.h"
#include "test_paths.h"

namespace {

using kindred::testing::source_path;

kindred::testing::CommandResult run_merged(const std::string& arguments) { return kindred::testing::run_kindred(arguments, true); }

class DataPrepareCli : public ::testing::Test {
protected:
    void SetUp() override {
        out_ = std::filesystem::temp_directory_path() / ("kindred-cli-data-" + std::to_string(::getpid()) + "-" +
                                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(out_);
    }
    void TearDown() override { std::filesystem::remove_all(out_); }
    std::string fixture(const std::string& relative) const { return source_path("tests/data/fixtures/" + relative); }
    std::size_t lines(const std::string& name) const {
        std::ifstream in(out_ / name);
        std::size_t count = 0;
        for (std::string line; std::getline(in, line);) ++count;
        return count;
    }
    nlohmann::json card() const { return nlohmann::json::parse(std::ifstream(out_ / "data_card.json")); }
    std::filesystem::path out_;
};

TEST_F(DataPrepareCli, WritesShardsAndCardsWhoseCountsMatchTheFixtures) {
    const auto run = run_merged("data prepare --ed " + fixture("ed") + " --esconv " + fixture("esconv/ESConv.json") +
                                 " --goemotions " + fixture("goemotions") + " --alpha 0.5 --seed 3 --style-tokens '<tone:warm><persona:best_friend>'" +
                                 " --out " + out_.string());
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const auto data_card = card();
    std::size_t train = 0, dev = 0, test = 0;
    for (const auto& [name, source] : data_card["sources"].items()) {
        train += source["examples"]["train"].get<std::size_t>();
        dev += source["examples"]["dev"].get<std::size_t>();
        test += source["examples"]["test"].get<std::size_t>();
    }
    // Fixture totals: ED 3/1/1 conversations, ESConv 3 conversations over the hash split, GoEmotions 5/2/1 comments.
    EXPECT_EQ(train + dev + test, 16u);
    EXPECT_EQ(data_card["sources"]["empathetic_dialogues"]["conversations"]["train"], 3);
    EXPECT_EQ(data_card["sources"]["goemotions"]["utterances"]["dev"], 2);
    EXPECT_EQ(lines("train.jsonl"), train);
    EXPECT_EQ(lines("dev.jsonl"), dev);
    EXPECT_EQ(lines("test.jsonl"), test);
    EXPECT_EQ(data_card["mixture"]["seed"], 3);
    EXPECT_EQ(data_card["style_tokens"]["text"], "<tone:warm><persona:best_friend>");
    EXPECT_TRUE(std::filesystem::exists(out_ / "data_card.md"));
}

TEST_F(DataPrepareCli, BadRowFailsByDefaultNamingFileLineAndReason) {
    const auto run = run_merged("data prepare --ed " + fixture("ed_bad") + " --out " + out_.string());
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.output.find("kindred: error: " + fixture("ed_bad/train.csv") + ":5: expected 8 fields (9 with candidates), found 6"),
              std::string::npos)
        << run.output;
}

TEST_F(DataPrepareCli, SkipDropsAndRecordsInTheCard) {
    const auto run = run_merged("data prepare --ed " + fixture("ed_bad") + " --goemotions " + fixture("goemotions_bad") +
                                 " --on-error skip --out " + out_.string());
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const auto dropped = card()["sources"]["empathetic_dialogues"]["dropped"];
    ASSERT_EQ(dropped.size(), 4u);
    EXPECT_EQ(dropped[1]["line"], 6);
    EXPECT_EQ(dropped[1]["reason"], "unknown emotion label 'happyish'; dropped conversation hit:12_conv:24");
    EXPECT_EQ(card()["sources"]["goemotions"]["dropped"].size(), 5u);
}

TEST_F(DataPrepareCli, RejectsBadOptions) {
    const std::string ed = " --ed " + fixture("ed") + " --out " + out_.string();
    for (const std::string& arguments : {"--alpha 0" + ed, "--alpha 1.5" + ed, "--on-error ignore" + ed,
                                         "--style-tokens tone:warm" + ed, std::string("--out ") + out_.string()}) {
        const auto run = run_merged("data prepare " + arguments);
        EXPECT_EQ(run.exit_code, 1) << arguments << "\n" << run.output;
        EXPECT_NE(run.output.find("kindred: error: "), std::string::npos) << arguments << "\n" << run.output;
    }
}

}  // namespace
