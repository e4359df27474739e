// The reply checker against hand-labelled replies (tests/data/fixtures/checker/): precision and
// recall of each property on the test set and the dev set (both written and labelled before the
// rules were first scored on them; neither was used to tune the rules); plus the lexicon, the
// sentence and word helpers and the repetition-loop signal.
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "data/labels.h"
#include "data/reply_checker.h"
#include "test_paths.h"

namespace kindred::data {
namespace {

struct Scores {
    int tp = 0, fp = 0, fn = 0, tn = 0;
    double precision() const { return tp + fp == 0 ? 1.0 : static_cast<double>(tp) / (tp + fp); }
    double recall() const { return tp + fn == 0 ? 1.0 : static_cast<double>(tp) / (tp + fn); }
    void add(bool predicted, bool truth) {
        if (predicted && truth) ++tp;
        if (predicted && !truth) ++fp;
        if (!predicted && truth) ++fn;
        if (!predicted && !truth) ++tn;
    }
};

struct SetScores {
    Scores acknowledgment, feeling, question;
    int replies = 0;
};

SetScores score_file(const std::string& relative) {
    std::ifstream in(kindred::testing::source_path(relative));
    EXPECT_TRUE(in) << relative;
    SetScores scores;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto row = nlohmann::json::parse(line);
        const ReplyCheck check = check_reply(row["reply"].get<std::string>());
        scores.acknowledgment.add(check.acknowledgment, row["ack"].get<bool>());
        scores.feeling.add(check.named_feeling, row["feeling"].get<bool>());
        scores.question.add(check.question, row["question"].get<bool>());
        ++scores.replies;
    }
    return scores;
}

void print(const std::string& name, const SetScores& s) {
    for (const auto& [property, scores] : {std::pair{"acknowledgment", &s.acknowledgment}, std::pair{"named feeling", &s.feeling},
                                           std::pair{"question", &s.question}}) {
        std::cout << fmt::format("{} ({} replies) {}: precision {:.3f} recall {:.3f} (tp {} fp {} fn {} tn {})\n", name, s.replies,
                                 property, scores->precision(), scores->recall(), scores->tp, scores->fp, scores->fn, scores->tn);
    }
}

// Floors, not targets: the measured values are in docs/controller.md ("The checker"); a change to
// the rules that drops a property below them is a regression worth a look. They sit a little under
// what the rules reach so that one reworded rule does not fail the suite, and well above chance
// (the base rates of the test set are 0.60 / 0.50 / 0.56).
struct Floors {
    double precision = 0.0, recall = 0.0;
};

void expect_floors(const Scores& scores, Floors floors, const char* property) {
    EXPECT_GE(scores.precision(), floors.precision) << property;
    EXPECT_GE(scores.recall(), floors.recall) << property;
}

struct SetFloors {
    Floors acknowledgment, feeling, question;
};

// Scores a hand-labelled set, prints its table rows and holds each property to its floors.
void expect_set_above_floors(const char* name, const std::string& file, int replies, const SetFloors& floors) {
    const SetScores scores = score_file(file);
    print(name, scores);
    ASSERT_EQ(scores.replies, replies);
    expect_floors(scores.acknowledgment, floors.acknowledgment, "acknowledgment");
    expect_floors(scores.feeling, floors.feeling, "named feeling");
    expect_floors(scores.question, floors.question, "question");
}

TEST(ReplyChecker, PrecisionAndRecallOnTheHeldOutHandLabelledSet) {
    expect_set_above_floors("test", "tests/data/fixtures/checker/labelled_test.jsonl", 70, {{0.85, 0.85}, {0.85, 0.8}, {0.9, 0.9}});
}

TEST(ReplyChecker, PrecisionAndRecallOnTheDevSet) {
    expect_set_above_floors("dev", "tests/data/fixtures/checker/labelled_dev.jsonl", 50, {{0.85, 0.85}, {0.85, 0.85}, {0.9, 0.9}});
}

TEST(ReplyChecker, NamesTheUsersFeelingNotTheRepliers) {
    const ReplyCheck theirs = check_reply("It sounds like you're feeling lonely since the move.");
    EXPECT_TRUE(theirs.named_feeling);
    EXPECT_EQ(theirs.feelings, std::vector<std::string>{"loneliness"});
    EXPECT_FALSE(check_reply("I'm glad you told me. What happened?").named_feeling);
    EXPECT_FALSE(check_reply("The weather is nice today.").named_feeling);  // no feeling word, no speaking to the user
    EXPECT_TRUE(check_reply("That must be terrifying, and you sound worried.").named_feeling);
    EXPECT_EQ(check_reply("That must be terrifying, and you sound worried.").feelings, (std::vector<std::string>{"fear", "anxiety"}));
}

TEST(ReplyChecker, QuestionsMustBeGentle) {
    EXPECT_TRUE(check_reply("How are you holding up?").question);
    EXPECT_FALSE(check_reply("Why didn't you tell her sooner?").question);
    EXPECT_FALSE(check_reply("What were you thinking?").question);
    EXPECT_FALSE(check_reply("You should rest.").question);
    const ReplyCheck check = check_reply("I'm so sorry. You must be heartbroken. Do you want to talk about her?");
    EXPECT_TRUE(check.complete());
    EXPECT_TRUE(check.missing().empty());
    EXPECT_EQ(check.score(), 3);
    EXPECT_EQ(check_reply("Nice.").missing(), (std::vector<std::string>{"acknowledgment", "named feeling", "question"}));
}

TEST(ReplyChecker, AdviceAndRepetitionLoops) {
    EXPECT_TRUE(check_reply("You should talk to your boss.").advice);
    EXPECT_TRUE(check_reply("Just ignore them.").advice);
    EXPECT_TRUE(check_reply("I would recommend a lawyer.").advice);
    EXPECT_FALSE(check_reply("That sounds hard. What happened?").advice);
    // The report's looping example: one sentence ten times.
    std::string loop;
    for (int i = 0; i < 10; ++i) loop += "I'm sure he's broke. ";
    EXPECT_TRUE(check_reply(loop).repetition_loop);
    EXPECT_TRUE(check_reply("we can do it and we can do it and we can do it and more").repetition_loop);  // a 4-gram thrice
    EXPECT_FALSE(check_reply("I'm sorry. That sounds hard. What happened next? Tell me when you're ready.").repetition_loop);
}

TEST(ReplyChecker, LexiconCoversEveryHeadLabelButNeutralAndMapsIntoTheLabelSet) {
    const auto lexicon = feeling_lexicon();
    for (const EmotionLabel& label : emotion_labels()) {
        if (label.name == "neutral" || label.name == "caring" || label.name == "trust" || label.name == "admiration" ||
            label.name == "curiosity")
            continue;  // excluded on purpose (other senses in replies); see kNotFeelings
        const bool present = std::any_of(lexicon.begin(), lexicon.end(), [&](const LabelMapping& m) { return m.emotion == label.name; });
        EXPECT_TRUE(present) << label.name;
    }
    for (const LabelMapping& word : lexicon) {
        EXPECT_TRUE(emotion_index(word.emotion).has_value()) << word.source_label << " -> " << word.emotion;
        for (const LabelMapping& other : lexicon) {
            if (&other != &word) {
                EXPECT_NE(other.source_label, word.source_label);
            }
        }
    }
}

TEST(ReplyChecker, FeelingsMatchBySameLabelOrNearbyPlacement) {
    const std::vector<std::string> anxiety = {"anxiety"}, fear = {"fear"}, joy = {"joy"}, none;
    EXPECT_TRUE(feelings_match(anxiety, anxiety));
    EXPECT_TRUE(feelings_match(anxiety, fear));  // 0.21 apart on the circumplex
    EXPECT_FALSE(feelings_match(joy, fear));
    EXPECT_FALSE(feelings_match(none, fear));
    EXPECT_FALSE(feelings_match(joy, none));
}

TEST(ReplyChecker, SentenceSpansAndWords) {
    const std::string text = "Oh no!! That's hard.\nHow are you?  ok";
    const auto spans = sentence_spans(text);
    ASSERT_EQ(spans.size(), 4u);
    EXPECT_EQ(text.substr(spans[0].first, spans[0].second - spans[0].first), "Oh no!!");
    EXPECT_EQ(text.substr(spans[1].first, spans[1].second - spans[1].first), "That's hard.");
    EXPECT_EQ(text.substr(spans[2].first, spans[2].second - spans[2].first), "How are you?");
    EXPECT_EQ(text.substr(spans[3].first, spans[3].second - spans[3].first), "ok");
    EXPECT_EQ(words_of("That's HARD, ok?"), (std::vector<std::string>{"that's", "hard", "ok"}));
}

}  // namespace
}  // namespace kindred::data
