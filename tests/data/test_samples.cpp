// prepare_corpus on data/samples/ (hand-written stand-ins in the native layouts, with their own
// README counting them): the loaders' counts must agree with the counts stated there.
#include <filesystem>

#include <gtest/gtest.h>

#include "data/prepare.h"
#include "data_test_util.h"

namespace kindred::data {
namespace {

using testing::source_path;
using testing::TempDir;

TEST(Samples, CountsAgreeWithTheSamplesReadme) {
    const auto samples = source_path("data/samples");
    if (!std::filesystem::exists(samples + "/README.md")) GTEST_SKIP() << "no data/samples in this checkout";
    TempDir out;
    PrepareOptions options;
    options.empathetic_dialogues = samples + "/empatheticdialogues";
    options.esconv = samples + "/esconv/ESConv.json";
    options.goemotions = samples + "/goemotions";
    options.out_dir = out.path().string();
    const auto report = prepare_corpus(options);
    ASSERT_EQ(report.sources.size(), 3u);
    const auto& ed = report.sources[0];
    EXPECT_EQ(ed.splits.at("train").conversations, 64u);
    EXPECT_EQ(ed.splits.at("dev").conversations, 12u);
    EXPECT_EQ(ed.splits.at("test").conversations, 12u);
    EXPECT_EQ(ed.splits.at("train").utterances, 282u);
    EXPECT_EQ(ed.splits.at("dev").utterances, 52u);
    EXPECT_EQ(ed.labels.size(), 32u);  // all 32 emotions appear
    const auto& es = report.sources[1];
    std::size_t conversations = 0, utterances = 0;
    for (const auto& [split, counts] : es.splits) {
        conversations += counts.conversations;
        utterances += counts.utterances;
    }
    EXPECT_EQ(conversations, 35u);
    EXPECT_EQ(utterances, 569u);
    EXPECT_EQ(es.labels.size(), 11u);
    EXPECT_EQ(es.strategies.at("Question"), 61u);  // 56 + 5 spelled "Questions"
    EXPECT_EQ(es.strategies.at("Others"), 49u);    // 44 + 5 spelled "Other"
    EXPECT_EQ(es.strategies.at("Affirmation and Reassurance"), 71u);
    const auto& ge = report.sources[2];
    EXPECT_EQ(ge.splits.at("train").examples, 272u);
    EXPECT_EQ(ge.splits.at("dev").examples, 40u);
    EXPECT_EQ(ge.splits.at("test").examples, 40u);
    EXPECT_EQ(ge.labels.size(), 28u);
    for (const auto& stats : report.sources) EXPECT_TRUE(stats.dropped.empty()) << stats.source;

    PrepareOptions hub;
    hub.esconv = samples + "/esconv/esconv_hf.jsonl";
    hub.out_dir = out.path().string();
    const auto hub_report = prepare_corpus(hub);
    conversations = utterances = 0;
    for (const auto& [split, counts] : hub_report.sources[0].splits) {
        conversations += counts.conversations;
        utterances += counts.utterances;
    }
    EXPECT_EQ(conversations, 5u);
    EXPECT_EQ(utterances, 55u);
}

}  // namespace
}  // namespace kindred::data
