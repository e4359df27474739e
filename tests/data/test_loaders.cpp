// Loaders on hand-written fixtures in the released layouts: every documented quirk, and malformed
// files under both error policies.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/empathetic_dialogues.h"
#include "data/esconv.h"
#include "data/goemotions.h"
#include "data/records.h"
#include "data/split.h"
#include "data_test_util.h"
#include "error_of.h"

namespace kindred::data {
namespace {

using testing::Collected;
using testing::fixture;
using testing::TempDir;
using testing::error_of;

LoadOptions skip_options() {
    LoadOptions options;
    options.on_error = ErrorPolicy::Skip;
    return options;
}


TEST(EmpatheticDialogues, ConversationsBecomeOneExampleWithListenerTargets) {
    Collected out;
    SourceStats stats;
    load_empathetic_dialogues(fixture("ed"), LoadOptions{}, stats, out.sink());
    ASSERT_EQ(out.examples.size(), 5u);
    const auto& first = out.examples[0];
    EXPECT_EQ(first.id, "ed:hit:1_conv:2");
    EXPECT_EQ(first.split, "train");
    EXPECT_EQ(first.task, Task::Chat);
    ASSERT_EQ(first.messages.size(), 5u);  // system + 4 utterances
    EXPECT_EQ(first.messages[0].role, Role::System);
    EXPECT_EQ(first.messages[1].role, Role::User);
    EXPECT_FALSE(first.messages[1].target);
    // _comma_ decoded, trailing spaces trimmed.
    EXPECT_EQ(first.messages[1].content, "We had to put our old dog down last week, and the house feels empty.");
    EXPECT_EQ(first.messages[2].role, Role::Assistant);
    EXPECT_TRUE(first.messages[2].target);
    EXPECT_EQ(first.messages[2].content, "I'm so sorry. How long was he with you?");
    EXPECT_TRUE(first.messages[4].target);
    EXPECT_EQ(first.emotions, (std::vector<std::string>{"sadness"}));
    EXPECT_EQ(first.source_labels, (std::vector<std::string>{"sad"}));
    ASSERT_TRUE(first.va);
    EXPECT_EQ(first.va->valence, emotion_va("sadness").valence);
    EXPECT_EQ(first.situation, "My dog got old, and last week we had to say goodbye.");
    EXPECT_EQ(first.original["line"], 2);
    EXPECT_EQ(first.original["file"], "train.csv");

    // A conversation ending on the speaker keeps that turn (context for the emotion head).
    EXPECT_EQ(out.examples[1].messages.back().role, Role::User);
    EXPECT_EQ(out.examples[1].messages.back().content, "I think it was the retired man next door. I should bake him something.");

    // The 9-field row (valid.csv) parses; its candidates are not part of the conversation.
    const auto& dev = out.examples[3];
    EXPECT_EQ(dev.split, "dev");
    EXPECT_EQ(dev.messages[1].content, "My daughter ran her first marathon on Sunday!");
    EXPECT_EQ(dev.emotions, (std::vector<std::string>{"pride"}));
    EXPECT_EQ(dev.original["candidates"]["1"],
              nlohmann::json::array({"Congratulations, that is huge!", "How did she train?", "That|s a typo candidate"}));
    EXPECT_EQ(out.examples[4].split, "test");

    EXPECT_EQ(stats.splits["train"].conversations, 3u);
    EXPECT_EQ(stats.splits["train"].utterances, 9u);
    EXPECT_EQ(stats.splits["dev"].utterances, 2u);
    EXPECT_EQ(stats.labels["sad"], 1u);
    EXPECT_TRUE(stats.dropped.empty());
    EXPECT_EQ(stats.license, "CC BY-NC 4.0");
}

TEST(EmpatheticDialogues, MalformedRowsFailNamingFileLineAndReason) {
    const auto path = fixture("ed_bad/train.csv");
    const auto message = error_of([&] {
        SourceStats stats;
        load_empathetic_dialogues_file(path, "train", LoadOptions{}, stats, [](Example&&) {});
    });
    EXPECT_EQ(message, path + ":5: expected 8 fields (9 with candidates), found 6");
}

TEST(EmpatheticDialogues, SkipDropsTheWholeConversationOfABadRowAndRecordsIt) {
    Collected out;
    SourceStats stats;
    load_empathetic_dialogues_file(fixture("ed_bad/train.csv"), "train", skip_options(), stats, out.sink());
    ASSERT_EQ(out.examples.size(), 2u);
    EXPECT_EQ(out.examples[0].id, "ed:hit:10_conv:20");
    EXPECT_EQ(out.examples[1].id, "ed:hit:14_conv:28");
    ASSERT_EQ(stats.dropped.size(), 4u);
    EXPECT_EQ(stats.dropped[0].line, 5u);
    EXPECT_EQ(stats.dropped[0].reason, "expected 8 fields (9 with candidates), found 6; dropped conversation hit:11_conv:22");
    EXPECT_EQ(stats.dropped[1].line, 6u);
    EXPECT_EQ(stats.dropped[1].reason, "unknown emotion label 'happyish'; dropped conversation hit:12_conv:24");
    EXPECT_EQ(stats.dropped[2].line, 8u);
    EXPECT_EQ(stats.dropped[2].reason, "empty utterance; dropped conversation hit:13_conv:26");
    EXPECT_EQ(stats.dropped[3].line, 12u);
    EXPECT_EQ(stats.dropped[3].reason, "utterance_idx 3 out of order (expected 2); dropped conversation hit:15_conv:30");
    EXPECT_EQ(stats.splits["train"].conversations, 2u);
}

TEST(EmpatheticDialogues, WrongHeaderAndNonContiguousConversations) {
    TempDir dir;
    const auto header = dir.write("h.csv", "a,b,c\n");
    EXPECT_NE(error_of([&] {
                  SourceStats stats;
                  load_empathetic_dialogues_file(header, "train", skip_options(), stats, [](Example&&) {});
              }).find("h.csv:1: not an EmpatheticDialogues file"),
              std::string::npos);
    const auto huge = dir.write("big.csv", std::string(LineReader::kMaxLine + 1, 'x') + "\n");
    EXPECT_NE(error_of([&] {
                  SourceStats stats;
                  load_empathetic_dialogues_file(huge, "train", skip_options(), stats, [](Example&&) {});
              }).find("big.csv:1: not an EmpatheticDialogues file"),
              std::string::npos);
    const auto split = dir.write("s.csv",
                                 "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\n"
                                 "c1,1,sad,p,1,a,,\n"
                                 "c2,1,sad,p,1,b,,\n"
                                 "c1,2,sad,p,2,c,,\n");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_empathetic_dialogues_file(split, "train", LoadOptions{}, stats, [](Example&&) {});
              }),
              split + ":4: conversation c1 appears again after other rows");
    const auto utf8 = dir.write("u.csv", "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\nc1,1,sad,p,1,bad \xff byte,,\n");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_empathetic_dialogues_file(utf8, "train", LoadOptions{}, stats, [](Example&&) {});
              }),
              utf8 + ":2: invalid UTF-8");
    EXPECT_NE(error_of([&] {
                  SourceStats stats;
                  load_empathetic_dialogues(dir.path().string(), LoadOptions{}, stats, [](Example&&) {});
              }).find("train.csv: EmpatheticDialogues file missing"),
              std::string::npos);
}

TEST(EmpatheticDialogues, ASpeakerOnlyConversationIsAnEmotionExample) {
    TempDir dir;
    const auto path = dir.write("t.csv", "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\nc1,1,lonely,p,1,Nobody called today.,,\n");
    Collected out;
    SourceStats stats;
    load_empathetic_dialogues_file(path, "train", LoadOptions{}, stats, out.sink());
    ASSERT_EQ(out.examples.size(), 1u);
    EXPECT_EQ(out.examples[0].task, Task::Emotion);
    EXPECT_EQ(out.examples[0].emotions, (std::vector<std::string>{"loneliness"}));
}

TEST(Esconv, OriginalLayoutMergesConsecutiveTurnsAndNormalisesStrategies) {
    Collected out;
    SourceStats stats;
    load_esconv(fixture("esconv/ESConv.json"), LoadOptions{}, stats, out.sink());
    ASSERT_EQ(out.examples.size(), 3u);
    const auto& first = out.examples[0];
    EXPECT_EQ(first.source, "esconv");
    EXPECT_EQ(first.task, Task::Chat);
    // system, sup, seek(2 merged), sup(2 merged), seek, sup, seek, sup
    ASSERT_EQ(first.messages.size(), 8u);
    EXPECT_EQ(first.messages[1].role, Role::Assistant);  // the supporter opened
    EXPECT_TRUE(first.messages[1].target);
    EXPECT_EQ(first.messages[1].content, "Hi there, what would you like to talk about today?");
    EXPECT_EQ(first.messages[1].strategies, (std::vector<std::string>{"Question"}));  // "Questions"
    EXPECT_EQ(first.messages[2].content, "Hi. I'm worried about work.\nMy contract ends soon and nothing has come through.");
    EXPECT_TRUE(first.messages[2].feedback.empty());
    EXPECT_EQ(first.messages[3].strategies, (std::vector<std::string>{"Reflection of feelings", "Question"}));
    EXPECT_EQ(first.messages[4].feedback, (std::vector<int>{4}));
    EXPECT_EQ(first.messages[7].strategies, (std::vector<std::string>{"Others"}));  // "Other"
    EXPECT_EQ(first.emotions, (std::vector<std::string>{"anxiety"}));
    EXPECT_EQ(first.situation, "My contract ends next month and I have no offers yet.");
    EXPECT_EQ(first.original["problem_type"], "job crisis");
    EXPECT_EQ(first.original["line"], 2);
    EXPECT_EQ(first.original["index"], 0);
    EXPECT_EQ(out.examples[2].emotions, (std::vector<std::string>{"grief"}));  // "pain"

    std::size_t conversations = 0;
    std::size_t utterances = 0;
    for (const auto& example : out.examples) {
        EXPECT_EQ(example.split, hash_split(example.id));
        EXPECT_EQ(example.id.rfind("esconv:", 0), 0u);
    }
    for (const auto& [split, counts] : stats.splits) {
        conversations += counts.conversations;
        utterances += counts.utterances;
    }
    EXPECT_EQ(conversations, 3u);
    EXPECT_EQ(utterances, 17u);  // original turns, before merging
    EXPECT_EQ(stats.strategies["Question"], 2u);
    EXPECT_EQ(stats.strategies["Others"], 1u);
    EXPECT_EQ(stats.labels["pain"], 1u);
}

TEST(Esconv, IdsAndSplitsAreStableUnderReordering) {
    Collected forward;
    SourceStats stats;
    load_esconv(fixture("esconv/ESConv.json"), LoadOptions{}, stats, forward.sink());
    auto list = nlohmann::json::parse(std::ifstream(fixture("esconv/ESConv.json")));
    std::reverse(list.begin(), list.end());
    TempDir dir;
    Collected reversed;
    load_esconv(dir.write("ESConv.json", list.dump()), LoadOptions{}, stats, reversed.sink());
    ASSERT_EQ(reversed.examples.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(forward.examples[i].id, reversed.examples[2 - i].id);
        EXPECT_EQ(forward.examples[i].split, reversed.examples[2 - i].split);
    }
}

TEST(Esconv, HuggingFaceJsonLinesLayout) {
    Collected out;
    SourceStats stats;
    load_esconv(fixture("esconv/esconv.jsonl"), LoadOptions{}, stats, out.sink());
    ASSERT_EQ(out.examples.size(), 2u);
    const auto& first = out.examples[0];
    ASSERT_EQ(first.messages.size(), 5u);  // system, usr, sys, usr, sys(2 merged)
    EXPECT_EQ(first.messages[1].role, Role::User);
    EXPECT_EQ(first.messages[4].strategies, (std::vector<std::string>{"Information", "Providing Suggestions"}));
    EXPECT_EQ(first.original["line"], 1);
    EXPECT_EQ(out.examples[1].emotions, (std::vector<std::string>{"anxiety"}));  // nervousness
    EXPECT_EQ(out.examples[1].original["line"], 2);
}

TEST(Esconv, MalformedConversationsUnderBothPolicies) {
    const auto path = fixture("esconv_bad/ESConv.json");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_esconv(path, LoadOptions{}, stats, [](Example&&) {});
              }),
              path + ":2: conversation 0: dialog[1]: unknown speaker 'bot' (expected seeker or supporter)");
    Collected out;
    SourceStats stats;
    load_esconv(path, skip_options(), stats, out.sink());
    ASSERT_EQ(out.examples.size(), 1u);
    EXPECT_EQ(out.examples[0].emotions, (std::vector<std::string>{"guilt"}));
    EXPECT_EQ(out.examples[0].original["index"], 5);
    ASSERT_EQ(stats.dropped.size(), 5u);
    // Lines are where each conversation object opens in the fixture (json.dumps, indent=1).
    EXPECT_EQ(stats.dropped[1].line, 20u);
    EXPECT_EQ(stats.dropped[1].reason, "conversation 1: unknown emotion_type 'boredom'; dropped conversation 1");
    EXPECT_EQ(stats.dropped[2].reason, "conversation 2: dialog[1]: unknown strategy 'Hugging'; dropped conversation 2");
    EXPECT_EQ(stats.dropped[3].reason, "conversation 3: dialog[0]: empty utterance; dropped conversation 3");
    EXPECT_NE(stats.dropped[4].reason.find("conversation 4: bad JSON"), std::string::npos);
    EXPECT_EQ(stats.dropped[4].line, stats.dropped[3].line + 11);
}

TEST(Esconv, BrokenFilesAndStructure) {
    TempDir dir;
    const auto not_json = dir.write("a.json", "hello");
    EXPECT_NE(error_of([&] {
                  SourceStats stats;
                  load_esconv(not_json, skip_options(), stats, [](Example&&) {});
              }).find("not ESConv"),
              std::string::npos);
    const auto truncated = dir.write("b.json", "[\n{\"emotion_type\": \"fear\", \"dialog\": [\n");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_esconv(truncated, LoadOptions{}, stats, [](Example&&) {});
              }),
              truncated + ":2: unterminated JSON: the list ends inside a conversation");
    const auto bad_feedback = dir.write("c.jsonl",
                                        R"({"emotion_type": "fear", "dialog": [{"speaker": "seeker", "annotation": {"feedback": "9"}, "content": "x"}]})"
                                        "\n");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_esconv(bad_feedback, LoadOptions{}, stats, [](Example&&) {});
              }),
              bad_feedback + ":1: conversation 0: dialog[0]: feedback \"9\" is not 1..5");
    const auto unbalanced = dir.write("e.json", "[\n{\"emotion_type\": \"fear\", \"dialog\": [{\"speaker\": \"seeker\", \"content\": \"x\"}]}\n}]");
    Collected kept;
    SourceStats unbalanced_stats;
    load_esconv(unbalanced, skip_options(), unbalanced_stats, kept.sink());
    EXPECT_EQ(kept.examples.size(), 1u);
    ASSERT_EQ(unbalanced_stats.dropped.size(), 1u);
    EXPECT_EQ(unbalanced_stats.dropped[0].line, 3u);
    EXPECT_EQ(unbalanced_stats.dropped[0].reason, "unbalanced '}' in the JSON list; dropped the rest of the file");
    const auto wrapping = dir.write("f.jsonl",
                                    R"({"emotion_type": "fear", "dialog": [{"speaker": "seeker", "annotation": {"feedback": 4294967297}, "content": "x"}]})"
                                    "\n");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_esconv(wrapping, LoadOptions{}, stats, [](Example&&) {});
              }),
              wrapping + ":1: conversation 0: dialog[0]: feedback 4294967297 is not 1..5");
    const auto trailing = dir.write("d.json", "[]\n]");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_esconv(trailing, LoadOptions{}, stats, [](Example&&) {});
              }),
              trailing + ":2: text after the end of the JSON list");
}

TEST(GoEmotions, QuotedMultiLabelRecordsFeedTheEmotionHeadOnly) {
    Collected out;
    SourceStats stats;
    load_goemotions(fixture("goemotions"), LoadOptions{}, stats, out.sink());  // finds data/
    ASSERT_EQ(out.examples.size(), 8u);
    const auto& first = out.examples[0];
    EXPECT_EQ(first.task, Task::Emotion);
    ASSERT_EQ(first.messages.size(), 2u);
    EXPECT_EQ(first.messages[1].role, Role::User);
    EXPECT_FALSE(first.messages[1].target);
    EXPECT_EQ(first.id, "goemotions:eaa0001");
    // ids 26,17 = surprise, joy; listed in emotion-head order.
    EXPECT_EQ(first.source_labels, (std::vector<std::string>{"surprise", "joy"}));
    EXPECT_EQ(first.emotions, (std::vector<std::string>{"joy", "surprise"}));
    ASSERT_TRUE(first.va);
    EXPECT_DOUBLE_EQ(first.va->valence, (emotion_va("joy").valence + emotion_va("surprise").valence) / 2);
    EXPECT_EQ(out.examples[1].messages[1].content, "She said \"no way\" and walked out");
    EXPECT_EQ(out.examples[2].messages[1].content, "Thank you so much for this, it made my day");
    EXPECT_EQ(out.examples[2].emotions, (std::vector<std::string>{"joy", "gratitude", "admiration"}));
    EXPECT_EQ(out.examples[3].messages[1].content, "A quoted text with a\ttab inside");
    EXPECT_EQ(out.examples[6].messages[1].content, "\"Fine\", she said.");
    EXPECT_EQ(out.examples[6].split, "dev");
    EXPECT_EQ(out.examples[7].split, "test");
    EXPECT_EQ(stats.splits["train"].conversations, 5u);
    EXPECT_EQ(stats.labels["joy"], 2u);
    EXPECT_EQ(stats.license, "Apache-2.0");
}

TEST(GoEmotions, MalformedRecordsUnderBothPolicies) {
    const auto path = fixture("goemotions_bad/train.tsv");
    EXPECT_EQ(error_of([&] {
                  SourceStats stats;
                  load_goemotions_file(path, "train", LoadOptions{}, stats, [](Example&&) {});
              }),
              path + ":2: expected 3 tab-separated fields, found 2");
    Collected out;
    SourceStats stats;
    load_goemotions_file(path, "train", skip_options(), stats, out.sink());
    ASSERT_EQ(out.examples.size(), 1u);
    ASSERT_EQ(stats.dropped.size(), 5u);
    EXPECT_EQ(stats.dropped[1].line, 3u);
    EXPECT_EQ(stats.dropped[1].reason, "unknown label id 28 (GoEmotions ids are 0..27); dropped record");
    EXPECT_EQ(stats.dropped[2].reason, "label id 'joy' is not a number; dropped record");
    EXPECT_EQ(stats.dropped[3].reason, "empty text; dropped record");
    EXPECT_EQ(stats.dropped[4].line, 6u);
    EXPECT_EQ(stats.dropped[4].reason, "unterminated quoted field; dropped record");
}

// A benchmark copy may withhold the test split (../shared/goemotions does): train and dev are read,
// the absence is recorded; a missing train or dev file is still an error naming the file.
TEST(GoEmotions, AMissingTestFileLeavesItsSplitEmpty) {
    TempDir dir;
    dir.write("train.tsv", "Happy days\t17\tx1\n");
    dir.write("dev.tsv", "So sad\t25\tx2\n");
    Collected out;
    SourceStats stats;
    load_goemotions(dir.path().string(), LoadOptions{}, stats, out.sink());
    ASSERT_EQ(out.examples.size(), 2u);
    EXPECT_EQ(out.examples[1].split, "dev");
    ASSERT_EQ(stats.missing.size(), 1u);
    EXPECT_EQ(stats.missing[0], (dir.path() / "test.tsv").string());
    std::filesystem::remove(dir.path() / "dev.tsv");
    SourceStats again;
    EXPECT_NE(error_of([&] { load_goemotions(dir.path().string(), LoadOptions{}, again, [](Example&&) {}); }).find("dev.tsv"),
              std::string::npos);
}

TEST(GoEmotions, EmotionsFileMustMatchTheKnownOrder) {
    TempDir dir;
    for (const char* name : {"train.tsv", "dev.tsv", "test.tsv"}) dir.write(name, "");
    dir.write("emotions.txt", "amusement\nadmiration\n");
    SourceStats stats;
    EXPECT_NE(error_of([&] { load_goemotions(dir.path().string(), LoadOptions{}, stats, [](Example&&) {}); })
                  .find("emotions.txt:1: label 'amusement' where GoEmotions id 0 should be 'admiration'"),
              std::string::npos);
}

}  // namespace
}  // namespace kindred::data
