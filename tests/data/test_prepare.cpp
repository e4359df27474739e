// prepare_corpus end to end on the fixtures: shards, cards, counts, determinism, bad input.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/prepare.h"
#include "data_test_util.h"

namespace kindred::data {
namespace {

using testing::fixture;
using testing::read_jsonl;
using testing::TempDir;

PrepareOptions all_sources(const TempDir& out) {
    PrepareOptions options;
    options.empathetic_dialogues = fixture("ed");
    options.esconv = fixture("esconv/ESConv.json");
    options.goemotions = fixture("goemotions");
    options.out_dir = out.path().string();
    return options;
}

TEST(Prepare, ShardsAndCardsMatchTheFixtures) {
    TempDir out;
    const auto report = prepare_corpus(all_sources(out));
    const auto card = nlohmann::json::parse(std::ifstream(out.file("data_card.json")));
    const auto train = read_jsonl(out.file("train.jsonl"));
    const auto dev = read_jsonl(out.file("dev.jsonl"));
    const auto test = read_jsonl(out.file("test.jsonl"));

    const auto& ed = card["sources"]["empathetic_dialogues"];
    EXPECT_EQ(ed["conversations"]["train"], 3);
    EXPECT_EQ(ed["utterances"]["train"], 9);
    EXPECT_EQ(ed["examples"]["dev"], 1);
    EXPECT_EQ(ed["license"], "CC BY-NC 4.0");
    EXPECT_EQ(ed["files"].size(), 3u);
    EXPECT_EQ(ed["labels"]["sad"], 1);
    EXPECT_TRUE(ed["dropped"].empty());
    const auto& ge = card["sources"]["goemotions"];
    EXPECT_EQ(ge["examples"]["train"], 5);
    EXPECT_EQ(ge["examples"]["dev"], 2);
    EXPECT_EQ(ge["license"], "Apache-2.0");
    const auto& es = card["sources"]["esconv"];
    EXPECT_EQ(es["license"], "CC BY-NC 4.0");
    const int es_total = es["examples"]["train"].get<int>() + es["examples"]["dev"].get<int>() + es["examples"]["test"].get<int>();
    EXPECT_EQ(es_total, 3);

    // Dev and test hold every dev/test example once; train holds the mixture draws.
    std::size_t dev_expected = 0, test_expected = 0, train_examples = 0;
    for (const auto& [name, source] : card["sources"].items()) {
        dev_expected += source["examples"]["dev"].get<std::size_t>();
        test_expected += source["examples"]["test"].get<std::size_t>();
        train_examples += source["examples"]["train"].get<std::size_t>();
    }
    EXPECT_EQ(dev.size(), dev_expected);
    EXPECT_EQ(test.size(), test_expected);
    EXPECT_EQ(train.size(), train_examples);  // default: as many draws as train examples
    EXPECT_EQ(card["shards"]["train"], train.size());
    std::size_t draws = 0;
    for (const auto& [name, entry] : card["mixture"]["sources"].items()) {
        draws += entry["draws"].get<std::size_t>();
        std::size_t in_shard = 0;
        for (const auto& line : train) in_shard += line["source"] == name;
        EXPECT_EQ(entry["draws"].get<std::size_t>(), in_shard) << name;
    }
    EXPECT_EQ(draws, train.size());
    EXPECT_EQ(card["mixture"]["alpha"], 0.5);

    for (const auto& line : train) EXPECT_EQ(line["split"], "train");
    for (const auto& line : dev) EXPECT_EQ(line["split"], "dev");
    // Schema spot checks.
    const auto& example = dev[0];
    EXPECT_EQ(example["id"], "ed:hit:4_conv:8");
    EXPECT_EQ(example["task"], "chat");
    EXPECT_EQ(example["messages"][0]["role"], "system");
    EXPECT_EQ(example["messages"][2]["target"], true);
    EXPECT_EQ(example["emotion"]["labels"], nlohmann::json::array({"pride"}));
    EXPECT_TRUE(example["valence"].is_number());
    EXPECT_EQ(example["original"]["conv_id"], "hit:4_conv:8");
    EXPECT_TRUE(std::filesystem::exists(out.file("data_card.md")));
    EXPECT_FALSE(std::filesystem::exists(out.file(".train-esconv.spill")));
    EXPECT_EQ(report.sources.size(), 3u);
}

TEST(Prepare, SameSeedSameFilesAndAlphaChangesTheMix) {
    TempDir a, b;
    auto options = all_sources(a);
    options.seed = 7;
    options.train_examples = 200;
    prepare_corpus(options);
    options.out_dir = b.path().string();
    prepare_corpus(options);
    const auto slurp = [](const std::string& path) {
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    for (const char* name : {"train.jsonl", "dev.jsonl", "test.jsonl", "data_card.json"}) EXPECT_EQ(slurp(a.file(name)), slurp(b.file(name))) << name;
    const auto card = nlohmann::json::parse(std::ifstream(a.file("data_card.json")));
    // ED has 3 train examples and 200 draws: it is cycled in several passes.
    EXPECT_GT(card["mixture"]["sources"]["empathetic_dialogues"]["passes"].get<int>(), 1);
    EXPECT_EQ(card["mixture"]["sources"]["empathetic_dialogues"]["unique_examples"], 3);
}

TEST(Prepare, StyleTokensInTheSystemMessage) {
    TempDir out;
    auto options = all_sources(out);
    options.style = parse_style_tokens("<tone:warm><persona:best_friend>", StylePlacement::System);
    prepare_corpus(options);
    for (const auto& line : read_jsonl(out.file("dev.jsonl"))) {
        EXPECT_EQ(line["messages"][0]["content"].get<std::string>().rfind("<tone:warm><persona:best_friend> ", 0), 0u);
    }
}

TEST(Prepare, BadInputFailsOrIsSkippedAndCarded) {
    TempDir out;
    PrepareOptions options;
    options.empathetic_dialogues = fixture("ed_bad");
    options.goemotions = fixture("goemotions_bad");
    options.out_dir = out.path().string();
    EXPECT_THROW(prepare_corpus(options), Error);
    // A failed run leaves nothing behind: no scratch, no partial shards.
    EXPECT_TRUE(std::filesystem::is_empty(out.path()));
    options.load.on_error = ErrorPolicy::Skip;
    prepare_corpus(options);
    const auto card = nlohmann::json::parse(std::ifstream(out.file("data_card.json")));
    EXPECT_EQ(card["sources"]["empathetic_dialogues"]["dropped"].size(), 4u);
    EXPECT_EQ(card["sources"]["empathetic_dialogues"]["dropped"][0]["line"], 5);
    EXPECT_EQ(card["sources"]["goemotions"]["dropped"].size(), 5u);
    EXPECT_EQ(card["on_error"], "skip");
    EXPECT_EQ(read_jsonl(out.file("train.jsonl")).size(), 3u);  // 2 ED + 1 GoEmotions
}

TEST(Prepare, OptionsAreChecked) {
    TempDir out;
    PrepareOptions none;
    none.out_dir = out.path().string();
    EXPECT_THROW(prepare_corpus(none), Error);
    auto options = all_sources(out);
    options.alpha = 1.5;
    EXPECT_THROW(prepare_corpus(options), Error);
    options.alpha = 0.5;
    options.load.system_prompt = "bad \xff prompt";
    EXPECT_THROW(prepare_corpus(options), Error);
}

}  // namespace
}  // namespace kindred::data
