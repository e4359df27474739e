// data/safety_rules.h — the decoding controller's safety rules (self-harm or suicide, harm to
// others, medical dosing or diagnosis, abuse, eating disorders, legal or financial directives in the
// built-in set) and the detector that checks a user turn and a reply against them. Pure text: no
// model, no tokenizer, so the controller (infer/controller.h), the evaluations and a preference-data
// builder can all call the same detector.
//
// Rules file format (docs/controller.md has the full description; configs/safety.rules is the
// built-in set, compiled in): UTF-8 text, one `key = value` per line, `#` starts a comment line,
// blank lines are ignored. Sections:
//   [directives]  words = w1, w2, ...   (repeatable; single words, [a-z'] only)
//                 penalty = P           (logit penalty in (0, 100], once)
//   [referral]    reply = REGEX         (repeatable; how a reply points to help)
//   [rule ID]     ID of [a-z0-9_]; keys title, severity (crisis|caution), guidance, message and
//                 fallback (each once, all required), user = REGEX and reply = REGEX (repeatable;
//                 at least one of the two)
// Patterns are PCRE2 (UTF, Unicode properties), matched case-insensitively against the text with
// curly apostrophes (U+2018, U+2019) turned into '. Every problem is an Error naming the file and
// line: an unknown section or key, a key outside a section, a repeated once-only key, a missing
// required key, an empty value, a duplicate rule id, a regex that does not compile (PCRE2's message
// and offset), invalid UTF-8; and an input with no rule at all (an empty file) or without the
// [directives] and [referral] sections.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::data {

enum class Severity { Crisis, Caution };
const char* severity_name(Severity severity);

class SafetyRules;

// One rule that fired: where, and the first text that matched (for the per-turn log).
struct SafetyTrigger {
    std::string rule;            // rule id
    Severity severity = Severity::Caution;
    bool in_user = false;        // a `user` pattern matched the user's turn
    bool in_reply = false;       // a `reply` pattern matched the reply
    std::string user_match;      // the matched text, empty when !in_user
    std::string reply_match;
};

struct SafetyRule {
    std::string id;
    std::string title;
    Severity severity = Severity::Caution;
    std::string guidance;  // added to the hidden instructions of the re-decode
    std::string message;   // crisis: appended when the final reply does not point to help
    std::string fallback;  // the reply when the re-decoded one still matches a `reply` pattern (infer/controller.h)
    std::size_t line = 0;  // of the [rule ID] header
    std::size_t user_patterns = 0;
    std::size_t reply_patterns = 0;
};

class SafetyRules {
public:
    // Parses a rules file held in memory; `name` (the path, or "built-in") starts every message.
    static SafetyRules parse(std::string_view text, const std::string& name);
    // Reads and parses a file (at most 1 MiB).
    static SafetyRules read(const std::string& path);
    // configs/safety.rules as compiled in, parsed once.
    static const SafetyRules& builtin();
    static std::string_view builtin_text();

    SafetyRules(SafetyRules&&) noexcept;
    SafetyRules& operator=(SafetyRules&&) noexcept;
    ~SafetyRules();

    const std::string& name() const { return name_; }
    const std::vector<SafetyRule>& rules() const { return rules_; }
    const SafetyRule& rule(std::string_view id) const;  // Error naming the known ids
    bool has_rule(std::string_view id) const;
    const std::vector<std::string>& directive_words() const { return directive_words_; }
    float directive_penalty() const { return directive_penalty_; }

    // Every rule whose `user` patterns match `user_turn` or whose `reply` patterns match `reply`
    // (either may be empty), in file order, one entry per rule.
    std::vector<SafetyTrigger> detect(std::string_view user_turn, std::string_view reply) const;
    // The rules a reply alone breaks (`reply` patterns only): what a preference-data builder or a
    // judge of finished replies needs.
    std::vector<SafetyTrigger> reply_violations(std::string_view reply) const { return detect({}, reply); }
    // Whether `reply` points to help ([referral] patterns).
    bool refers_to_help(std::string_view reply) const;

private:
    struct Patterns;
    SafetyRules();

    std::string name_;
    std::vector<SafetyRule> rules_;
    std::vector<std::string> directive_words_;
    float directive_penalty_ = 0.0f;
    std::unique_ptr<Patterns> patterns_;
};

}  // namespace kindred::data
