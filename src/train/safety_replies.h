// train/safety_replies.h — what the preference stage takes from the decoding controller's safety
// rules (data/safety_rules.h; the built-in set is configs/safety.rules), so that DPO, `kindred pairs
// build` and the controller judge text with one detector:
//  - triggered_rule(): the first rule (file order) whose `user` patterns match a user turn. Source
//    (c) of `kindred pairs build` takes its prompts with it.
//  - violation(): the first rule whose `reply` patterns match a reply. The DPO violation penalty's
//    indicator 1[violation] is this applied to a pair's chosen completion (train/dpo_loss.h).
//  - violating_reply(): the rejected replies source (c) writes, per rule id of the built-in set and
//    kind (a directive, dismissal of the person's feelings, or encouragement of harm); every one is
//    flagged by violation() under the built-in rules (tests/train/test_safety_replies.cpp). The
//    chosen reply of such a pair is the gold reply when it breaks no rule, else the rule's own
//    fallback (safe by construction: tests/data/test_safety_rules.cpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "data/safety_rules.h"

namespace kindred::train {

enum class ViolationKind { Directive, Dismissive, Harmful };
inline constexpr std::size_t kViolationKindCount = 3;

const char* violation_kind_name(ViolationKind kind);  // "directive", "dismissive", "harmful"

// The first rule whose user patterns match `user_text`; null when none does.
const data::SafetyRule* triggered_rule(const data::SafetyRules& rules, std::string_view user_text);

// The first rule `reply` breaks (reply patterns only); nullopt for a reply that breaks none.
std::optional<data::SafetyTrigger> violation(const data::SafetyRules& rules, std::string_view reply);

// A reply of the given kind that breaks the built-in rules, written for a prompt that triggers rule
// `rule_id`; `variant` picks among the available ones (any value: taken modulo their count). Not
// every rule has every kind, and a rules file's own ids have none: nullopt.
std::optional<std::string> violating_reply(std::string_view rule_id, ViolationKind kind, std::size_t variant);

}  // namespace kindred::train
