// Tests for train/safety_replies.h: every rejected reply source (c) writes breaks a built-in rule,
// the replies chosen in their place break none, caring and negated phrasings pass, user turns are
// matched to the controller's rules, and every bundled safety prompt triggers one.
#include <gtest/gtest.h>

#include <string>

#include "test_paths.h"
#include "train/chat_dataset.h"
#include "train/safety_replies.h"

namespace kindred::train {
namespace {

const data::SafetyRules& rules() { return data::SafetyRules::builtin(); }

TEST(SafetyReplies, EveryViolatingReplyBreaksARuleAndEveryFallbackBreaksNone) {
    std::size_t replies = 0;
    for (const char* id : {"self_harm", "harm_to_others", "medical", "abuse", "eating_disorder", "legal_financial"}) {
        SCOPED_TRACE(id);
        EXPECT_FALSE(violation(rules(), rules().rule(id).fallback).has_value());
        std::size_t kinds = 0;
        for (std::size_t k = 0; k < kViolationKindCount; ++k) {
            const auto kind = static_cast<ViolationKind>(k);
            for (std::size_t variant = 0; variant < 2; ++variant) {
                const auto reply = violating_reply(id, kind, variant);
                if (!reply) continue;
                ++replies;
                if (variant == 0) ++kinds;
                const auto broken = violation(rules(), *reply);
                ASSERT_TRUE(broken.has_value()) << *reply;
                EXPECT_FALSE(broken->reply_match.empty());
            }
        }
        EXPECT_GE(kinds, 2u) << "each rule needs at least two kinds of rejected reply";
    }
    EXPECT_GE(replies, 12u);
    EXPECT_FALSE(violating_reply("a_rule_of_my_own", ViolationKind::Directive, 0).has_value());
}

TEST(SafetyReplies, RepliesAreJudgedByWhatTheySay) {
    const auto rule_of = [](const char* reply) {
        const auto broken = violation(rules(), reply);
        return broken ? broken->rule : std::string("none");
    };
    EXPECT_EQ(rule_of("You should double your dose if it isn't helping."), "medical");
    EXPECT_EQ(rule_of("It sounds like you have depression."), "medical");
    EXPECT_EQ(rule_of("You should sue your landlord."), "legal_financial");
    EXPECT_EQ(rule_of("Put all your savings into it."), "legal_financial");
    EXPECT_EQ(rule_of("Honestly, just get over it."), "dismissive");
    EXPECT_EQ(rule_of("You’re overreacting."), "dismissive");  // a typographic apostrophe too
    EXPECT_EQ(rule_of("That's not a big deal."), "dismissive");
    EXPECT_EQ(rule_of("You should get revenge on him."), "harm_to_others");
    EXPECT_EQ(rule_of("Skipping meals is fine."), "eating_disorder");
    // Caring and negated phrasings are not violations.
    EXPECT_EQ(rule_of("Please don't hurt yourself. Can you call someone you trust?"), "none");
    EXPECT_EQ(rule_of("I can't tell you what to do about your medication, but your doctor can."), "none");
    EXPECT_EQ(rule_of("That sounds so hard. What happened?"), "none");
    EXPECT_EQ(rule_of("It is a big deal, and you're right to take it seriously."), "none");
    EXPECT_EQ(rule_of("It's not your fault, and you shouldn't have to put up with it."), "none");
}

TEST(SafetyReplies, UserTurnsAreMatchedToTheControllersRules) {
    const auto rule_of = [](const char* text) {
        const data::SafetyRule* rule = triggered_rule(rules(), text);
        return rule != nullptr ? rule->id : std::string("none");
    };
    EXPECT_EQ(rule_of("Some days I just want to die."), "self_harm");
    EXPECT_EQ(rule_of("I keep thinking about hurting myself"), "self_harm");
    EXPECT_EQ(rule_of("I want to punch my brother so badly"), "harm_to_others");
    EXPECT_EQ(rule_of("Should I stop my meds? The side effects are awful."), "medical");
    EXPECT_EQ(rule_of("My boyfriend hits me when he's drunk."), "abuse");
    EXPECT_EQ(rule_of("I want to stop eating, I feel too fat."), "eating_disorder");
    EXPECT_EQ(rule_of("Should I put all my savings into crypto?"), "legal_financial");
    EXPECT_EQ(rule_of("I got a puppy today and I'm so happy!"), "none");
    EXPECT_EQ(rule_of("The spills in the kitchen drive me mad"), "none");  // "pills" only as a word
    // A reply pattern alone does not make a user turn a safety prompt.
    EXPECT_EQ(rule_of("My sister says I should just get over it."), "none");
}

// The bundled prompts of source (c) in the demo each trigger a rule, so each makes a safety pair.
TEST(SafetyReplies, EveryBundledSafetyPromptTriggersARule) {
    ChatDatasetStats stats;
    std::size_t prompts = 0;
    for_each_chat_example(kindred::testing::source_path("data/safety_prompts.jsonl"), stats, [&](ChatExample&& example) {
        ++prompts;
        const data::SafetyRule* rule = triggered_rule(rules(), example.messages.back().content);
        ASSERT_NE(rule, nullptr) << example.messages.back().content;
        EXPECT_TRUE(violating_reply(rule->id, ViolationKind::Directive, 0) ||
                    violating_reply(rule->id, ViolationKind::Dismissive, 0))
            << rule->id;
    });
    EXPECT_GE(prompts, 10u);
}

}  // namespace
}  // namespace kindred::train
