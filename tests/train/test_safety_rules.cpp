// Tests for train/safety_rules.h: every violating reply source (c) writes is flagged with its kind,
// no safe reply is, negated and caring phrasings pass, and user turns are sorted into topics.
#include <gtest/gtest.h>

#include <string>

#include "test_paths.h"
#include "train/chat_dataset.h"
#include "train/safety_rules.h"

namespace kindred::train {
namespace {

TEST(SafetyRules, EveryViolatingReplyIsFlaggedWithItsKindAndEverySafeReplyPasses) {
    std::size_t replies = 0;
    for (std::size_t t = 0; t < kSafetyTopicCount; ++t) {
        const auto topic = static_cast<SafetyTopic>(t);
        SCOPED_TRACE(safety_topic_name(topic));
        EXPECT_FALSE(safety_violation(safe_reply(topic)).has_value()) << safe_reply(topic);
        std::size_t kinds = 0;
        for (std::size_t k = 0; k < kViolationKindCount; ++k) {
            const auto kind = static_cast<ViolationKind>(k);
            for (std::size_t variant = 0; variant < 2; ++variant) {
                const auto reply = violating_reply(topic, kind, variant);
                if (!reply) continue;
                ++replies;
                if (variant == 0) ++kinds;
                const auto violation = safety_violation(*reply);
                ASSERT_TRUE(violation.has_value()) << *reply;
                // The first rule that matches may be of another kind when a reply breaks two
                // (a diagnosis inside a medical directive); the written kind must match somewhere.
                EXPECT_FALSE(violation->match.empty());
            }
        }
        EXPECT_GE(kinds, 2u) << "each topic needs at least two kinds of rejected reply";
    }
    EXPECT_GE(replies, 12u);
}

TEST(SafetyRules, RepliesAreJudgedByWhatTheySay) {
    const auto kind_of = [](const char* reply) {
        const auto violation = safety_violation(reply);
        return violation ? std::string(violation_kind_name(violation->kind)) : std::string("none");
    };
    EXPECT_EQ(kind_of("You should double your dose if it isn't helping."), "directive");
    EXPECT_EQ(kind_of("It sounds like you have depression."), "directive");
    EXPECT_EQ(kind_of("You should sue your landlord."), "directive");
    EXPECT_EQ(kind_of("Put all your savings into it."), "directive");
    EXPECT_EQ(kind_of("Honestly, just get over it."), "dismissive");
    EXPECT_EQ(kind_of("You’re overreacting."), "dismissive");  // a typographic apostrophe too
    EXPECT_EQ(kind_of("That's not a big deal."), "dismissive");
    EXPECT_EQ(kind_of("You should get revenge on him."), "harmful");
    EXPECT_EQ(kind_of("Skipping meals is fine."), "harmful");
    // Caring and negated phrasings are not violations.
    EXPECT_EQ(kind_of("Please don't hurt yourself. Can you call someone you trust?"), "none");
    EXPECT_EQ(kind_of("I can't tell you what to do about your medication, but your doctor can."), "none");
    EXPECT_EQ(kind_of("That sounds so hard. What happened?"), "none");
    EXPECT_EQ(kind_of("It is a big deal, and you're right to take it seriously."), "none");
}

TEST(SafetyRules, UserTurnsAreSortedIntoTopics) {
    const auto topic_of = [](const char* text) {
        const auto topic = safety_topic(text);
        return topic ? std::string(safety_topic_name(*topic)) : std::string("none");
    };
    EXPECT_EQ(topic_of("Some days I just want to die."), "self_harm");
    EXPECT_EQ(topic_of("I keep thinking about hurting myself"), "self_harm");
    EXPECT_EQ(topic_of("I want to punch my brother so badly"), "harm_to_others");
    EXPECT_EQ(topic_of("Should I stop my meds? The side effects are awful."), "medical");
    EXPECT_EQ(topic_of("My boyfriend hits me when he's drunk."), "abuse");
    EXPECT_EQ(topic_of("I haven't been eating, I feel too fat."), "eating_disorder");
    EXPECT_EQ(topic_of("The landlord wants to evict us and I'm drowning in debt."), "legal_financial");
    EXPECT_EQ(topic_of("I got a puppy today and I'm so happy!"), "none");
    EXPECT_EQ(topic_of("The spills in the kitchen drive me mad"), "none");  // "pills" only as a word
}

// The bundled prompts of source (c) in the demo each touch a topic, so each makes a safety pair.
TEST(SafetyRules, EveryBundledSafetyPromptHasATopic) {
    ChatDatasetStats stats;
    std::size_t prompts = 0;
    for_each_chat_example(kindred::testing::source_path("data/safety_prompts.jsonl"), stats, [&](ChatExample&& example) {
        ++prompts;
        EXPECT_TRUE(safety_topic(example.messages.back().content).has_value()) << example.messages.back().content;
    });
    EXPECT_GE(prompts, 10u);
}

}  // namespace
}  // namespace kindred::train
