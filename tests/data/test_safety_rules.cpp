// The safety rules: the built-in set parses and covers the six required categories, the detector
// fires on the user's turn and on a reply (curly apostrophes, any case), refers_to_help, and every
// file of the malformed corpus (tests/corpus/safety-rules-malformed/) is refused with a message
// naming the file and what is wrong (EXPECTED.json).
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/safety_rules.h"
#include "malformed_corpus.h"
#include "test_paths.h"

namespace kindred::data {
namespace {

bool fired(const std::vector<SafetyTrigger>& triggers, const std::string& rule) {
    return std::any_of(triggers.begin(), triggers.end(), [&](const SafetyTrigger& t) { return t.rule == rule; });
}

TEST(SafetyRules, BuiltinSetCoversTheRequiredCategories) {
    const SafetyRules& rules = SafetyRules::builtin();
    for (const char* id : {"self_harm", "harm_to_others", "medical", "abuse", "eating_disorder", "legal_financial"}) {
        ASSERT_TRUE(rules.has_rule(id)) << id;
        const SafetyRule& rule = rules.rule(id);
        EXPECT_FALSE(rule.title.empty());
        EXPECT_FALSE(rule.guidance.empty());
        EXPECT_FALSE(rule.fallback.empty());
        EXPECT_GT(rule.user_patterns, 0u) << id;
        EXPECT_GT(rule.reply_patterns, 0u) << id;
        // A fallback must itself be safe and, for a crisis rule, point to help.
        EXPECT_TRUE(rules.reply_violations(rule.fallback).empty()) << id;
        if (rule.severity == Severity::Crisis) {
            EXPECT_TRUE(rules.refers_to_help(rule.fallback)) << id;
            EXPECT_TRUE(rules.refers_to_help(rule.message)) << id;
        }
    }
    EXPECT_EQ(rules.rule("self_harm").severity, Severity::Crisis);
    EXPECT_EQ(rules.rule("medical").severity, Severity::Caution);
    EXPECT_GT(rules.directive_penalty(), 0.0f);
    EXPECT_NE(std::find(rules.directive_words().begin(), rules.directive_words().end(), "should"), rules.directive_words().end());
    EXPECT_THROW(rules.rule("nope"), Error);
    EXPECT_NE(SafetyRules::builtin_text().find("[rule self_harm]"), std::string_view::npos);
}

TEST(SafetyRules, DetectorReadsTheUserTurnAndTheReply) {
    const SafetyRules& rules = SafetyRules::builtin();
    auto triggers = rules.detect("I don\u2019t want to LIVE anymore", "");
    ASSERT_TRUE(fired(triggers, "self_harm"));
    EXPECT_TRUE(triggers.front().in_user);
    EXPECT_FALSE(triggers.front().in_reply);
    EXPECT_EQ(triggers.front().user_match, "don't want to LIVE");

    triggers = rules.detect("I have a headache", "Take 800 mg of ibuprofen.");
    ASSERT_TRUE(fired(triggers, "medical"));
    EXPECT_TRUE(triggers.front().in_reply);
    EXPECT_EQ(triggers.front().reply_match, "800 mg");

    EXPECT_TRUE(fired(rules.detect("Should I double my sertraline dose?", ""), "medical"));
    EXPECT_TRUE(fired(rules.detect("I'm going to hurt him so he learns", ""), "harm_to_others"));
    EXPECT_TRUE(fired(rules.detect("My boyfriend hits me when he drinks", ""), "abuse"));
    EXPECT_TRUE(fired(rules.detect("I want to stop eating for a week", ""), "eating_disorder"));
    EXPECT_TRUE(fired(rules.detect("Should I put all my savings into crypto?", ""), "legal_financial"));
    EXPECT_TRUE(fired(rules.reply_violations("You should sue your landlord."), "legal_financial"));
    // Endorsing a doubled dose, in words a demo's SFT+DPO reply used; a warning does not match.
    EXPECT_TRUE(fired(rules.reply_violations("Double is the best way to get some more help right away."), "medical"));
    EXPECT_TRUE(rules.reply_violations("Doubling your dose is not a good idea; please ask your pharmacist.").empty());
    // Ordinary sadness, anger and a hurt feeling trigger nothing.
    EXPECT_TRUE(rules.detect("My dog died this morning and I can't stop crying.", "I'm so sorry. How are you holding up?").empty());
    EXPECT_TRUE(rules.detect("My friend's joke really hurt my feelings.", "").empty());
    EXPECT_TRUE(rules.detect("I'm so angry at my coworker for taking credit.", "").empty());
}

// The one rule with reply patterns only: a draft that brushes the feeling aside, whatever the topic.
TEST(SafetyRules, DismissalIsJudgedInTheReplyOnly) {
    const SafetyRules& rules = SafetyRules::builtin();
    const SafetyRule& rule = rules.rule("dismissive");
    EXPECT_EQ(rule.user_patterns, 0u);
    EXPECT_GT(rule.reply_patterns, 0u);
    EXPECT_TRUE(rules.reply_violations(rule.fallback).empty());
    EXPECT_TRUE(rules.detect("My sister says I should just get over it.", "").empty());
    EXPECT_TRUE(fired(rules.reply_violations("Honestly, you're overreacting."), "dismissive"));
    EXPECT_TRUE(fired(rules.reply_violations("It's not that big of a deal, snap out of it."), "dismissive"));
    EXPECT_TRUE(rules.reply_violations("It is a big deal, and it's not your fault.").empty());
}

TEST(SafetyRules, ReferralRecognisesPointersToHelp) {
    const SafetyRules& rules = SafetyRules::builtin();
    EXPECT_TRUE(rules.refers_to_help("Please reach out to someone you trust."));
    EXPECT_TRUE(rules.refers_to_help("You can call or text 988 any time."));
    EXPECT_TRUE(rules.refers_to_help("Could you talk to your doctor about it?"));
    EXPECT_FALSE(rules.refers_to_help("That sounds really hard. What happened?"));
}

TEST(SafetyRules, ParsesAMinimalFileAndKeepsFileOrder) {
    const std::string text =
        "# comment\n[directives]\npenalty = 2.5\nwords = should, must\nwords = should, try\n\n[referral]\nreply = \\bhelpline\\b\n"
        "[rule b]\ntitle = B\nseverity = caution\nreply = \\bbad\\b\nguidance = g\nmessage = m\nfallback = f\n"
        "[rule a]\ntitle = A\nseverity = crisis\nuser = \\bworse\\b\nguidance = g\nmessage = call a helpline\nfallback = f\n";
    const SafetyRules rules = SafetyRules::parse(text, "mini.rules");
    ASSERT_EQ(rules.rules().size(), 2u);
    EXPECT_EQ(rules.rules()[0].id, "b");
    EXPECT_EQ(rules.rules()[0].line, 9u);
    EXPECT_FLOAT_EQ(rules.directive_penalty(), 2.5f);
    EXPECT_EQ(rules.directive_words(), (std::vector<std::string>{"should", "must", "try"}));  // deduplicated
    const auto triggers = rules.detect("it got WORSE", "that is bad");
    ASSERT_EQ(triggers.size(), 2u);
    EXPECT_EQ(triggers[0].rule, "b");
    EXPECT_EQ(triggers[1].rule, "a");
    EXPECT_EQ(triggers[1].severity, Severity::Crisis);
}

TEST(SafetyRules, MalformedCorpusIsRefusedWithTheExpectedMessages) {
    kindred::testing::expect_every_corpus_file_refused(kindred::testing::source_path("tests/corpus/safety-rules-malformed"),
                                                       [](const std::filesystem::path& file, const std::string&) { SafetyRules::read(file.string()); });
}

TEST(SafetyRules, ErrorsNameTheLine) {
    try {
        SafetyRules::read(kindred::testing::source_path("tests/corpus/safety-rules-malformed/unknown-key.rules"));
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("unknown-key.rules:15:"), std::string::npos) << error.what();
    }
    EXPECT_THROW(SafetyRules::read("/nonexistent/kindred.rules"), Error);
}

}  // namespace
}  // namespace kindred::data
