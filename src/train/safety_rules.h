// train/safety_rules.h — the preference stage's safety rules, as a small documented rule list:
//  - safety_topic(): whether a USER turn touches a topic the safety rules govern (self-harm or
//    suicide, harm to others, medical dosing or diagnosis, abuse, eating disorders, legal or
//    financial trouble). Source (c) of `kindred pairs build` takes its prompts with it.
//  - safety_violation(): whether a REPLY breaks a rule of train::default_safety_rules(): a
//    directive (a diagnosis; a medical, legal or financial instruction), dismissal of the person's
//    feelings, or encouragement of harm. The DPO violation penalty's indicator 1[violation] is this
//    function applied to a pair's chosen completion (train/dpo_loss.h).
// Both are case-insensitive PCRE2 patterns over words (listed in safety_rules.cpp, with the topic
// or rule each belongs to). They are a stand-in: the decoding controller (issue 13) brings the
// project's detector and checker, and when it lands these two functions call it instead — the
// swap is one line in each, nothing else depends on how they decide.
//
// The replies source (c) writes: safe_reply() per topic (warm, no directive, reaching out to
// trusted people or professionals where that fits) and violating_reply() per topic and kind
// (directive, dismissive, harmful), chosen by a caller's index; every violating reply is flagged by
// safety_violation() and no safe reply is (tests/train/test_safety_rules.cpp checks all of them).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kindred::train {

enum class SafetyTopic { SelfHarm, HarmToOthers, Medical, Abuse, EatingDisorder, LegalFinancial };
inline constexpr std::size_t kSafetyTopicCount = 6;

enum class ViolationKind { Directive, Dismissive, Harmful };
inline constexpr std::size_t kViolationKindCount = 3;

const char* safety_topic_name(SafetyTopic topic);     // "self_harm", "harm_to_others", ...
const char* violation_kind_name(ViolationKind kind);  // "directive", "dismissive", "harmful"

// The first topic (in enum order) whose pattern matches the user's text; nullopt when none does.
std::optional<SafetyTopic> safety_topic(std::string_view user_text);

struct SafetyViolation {
    ViolationKind kind = ViolationKind::Directive;
    std::string rule;   // e.g. "medical directive"
    std::string match;  // the text that matched
};

// The first rule (directive, dismissive, harmful order) a reply breaks; nullopt for a safe reply.
std::optional<SafetyViolation> safety_violation(std::string_view reply);

// A safe supportive reply for the topic.
const std::string& safe_reply(SafetyTopic topic);
// A reply of the given kind that breaks the rules for the topic; `variant` picks among the
// available ones (any value: taken modulo their count). Not every topic has every kind: nullopt.
std::optional<std::string> violating_reply(SafetyTopic topic, ViolationKind kind, std::size_t variant);

}  // namespace kindred::train
