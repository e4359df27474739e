#include "data/safety_rules.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "data/records.h"
#include "text/pretokenizer.h"

namespace kindred::data {

// configs/safety.rules, embedded at build time (src/data/CMakeLists.txt).
extern const char* const kBuiltinSafetyRules;

namespace {

constexpr std::uintmax_t kMaxRulesBytes = 1u << 20;
// A pattern this long is a mistake, not a rule; it also bounds PCRE2's compile work.
constexpr std::size_t kMaxPatternBytes = 4096;

bool is_id(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

std::optional<std::string> first_match(const std::vector<text::Regex>& patterns, const std::string& text) {
    std::vector<text::ByteRange> found;
    for (const text::Regex& pattern : patterns) {
        found.clear();
        pattern.find_all(text, 0, text.size(), found);
        if (!found.empty()) return text.substr(found.front().first, found.front().second - found.front().first);
    }
    return std::nullopt;
}

}  // namespace

const char* severity_name(Severity severity) { return severity == Severity::Crisis ? "crisis" : "caution"; }

struct SafetyRules::Patterns {
    std::vector<std::vector<text::Regex>> user;   // per rule
    std::vector<std::vector<text::Regex>> reply;  // per rule
    std::vector<text::Regex> referral;
};

SafetyRules::SafetyRules() : patterns_(std::make_unique<Patterns>()) {}
SafetyRules::SafetyRules(SafetyRules&&) noexcept = default;
SafetyRules& SafetyRules::operator=(SafetyRules&&) noexcept = default;
SafetyRules::~SafetyRules() = default;

SafetyRules SafetyRules::parse(std::string_view text, const std::string& name) {
    if (!is_valid_utf8(text)) fail("{}: not valid UTF-8", name);
    SafetyRules rules;
    rules.name_ = name;
    Patterns& patterns = *rules.patterns_;
    enum class Section { None, Directives, Referral, Rule };
    Section section = Section::None;
    std::vector<std::string> seen_once;  // once-only keys of the current section
    bool penalty_given = false, directives_seen = false, referral_seen = false;

    const auto finish_rule = [&](std::size_t line) {
        if (section != Section::Rule) return;
        const SafetyRule& rule = rules.rules_.back();
        for (const char* key : {"title", "severity", "guidance", "message", "fallback"}) {
            if (std::find(seen_once.begin(), seen_once.end(), key) == seen_once.end())
                fail("{}:{}: rule '{}' has no '{}' (before line {})", name, rule.line, rule.id, key, line);
        }
        if (rule.user_patterns + rule.reply_patterns == 0)
            fail("{}:{}: rule '{}' has no 'user' or 'reply' pattern", name, rule.line, rule.id);
    };
    const auto compile = [&](std::string_view value, std::size_t line) {
        if (value.size() > kMaxPatternBytes) fail("{}:{}: the pattern is longer than {} bytes", name, line, kMaxPatternBytes);
        return text::Regex("(?i)" + std::string(value), fmt::format("{}:{}", name, line));
    };

    std::size_t line_number = 0;
    std::size_t at = 0;
    while (at <= text.size()) {
        const auto end = std::min(text.find('\n', at), text.size());
        const std::string line = trim(text.substr(at, end - at));
        ++line_number;
        at = end + 1;
        if (line.empty() || line.front() == '#') continue;
        if (line.front() == '[') {
            if (line.back() != ']') fail("{}:{}: a section header must end with ']'", name, line_number);
            finish_rule(line_number);
            const std::string header = trim(std::string_view(line).substr(1, line.size() - 2));
            seen_once.clear();
            if (header == "directives") {
                if (directives_seen) fail("{}:{}: [directives] is given twice", name, line_number);
                directives_seen = true;
                section = Section::Directives;
            } else if (header == "referral") {
                if (referral_seen) fail("{}:{}: [referral] is given twice", name, line_number);
                referral_seen = true;
                section = Section::Referral;
            } else if (header.starts_with("rule ") || header.starts_with("rule\t")) {
                const std::string id = trim(std::string_view(header).substr(5));
                if (!is_id(id)) fail("{}:{}: rule id '{}' is not of [a-z0-9_]", name, line_number, id);
                if (rules.has_rule(id)) fail("{}:{}: rule '{}' is defined twice", name, line_number, id);
                SafetyRule rule;
                rule.id = id;
                rule.line = line_number;
                rules.rules_.push_back(std::move(rule));
                patterns.user.emplace_back();
                patterns.reply.emplace_back();
                section = Section::Rule;
            } else {
                fail("{}:{}: unknown section [{}] (expected [directives], [referral] or [rule ID])", name, line_number, header);
            }
            continue;
        }
        const auto equals = line.find('=');
        if (equals == std::string_view::npos) fail("{}:{}: expected 'key = value' or a [section] header", name, line_number);
        const std::string key = trim(std::string_view(line).substr(0, equals));
        const std::string value = trim(std::string_view(line).substr(equals + 1));
        if (section == Section::None) fail("{}:{}: '{}' is outside any section", name, line_number, key);
        if (value.empty()) fail("{}:{}: '{}' has an empty value", name, line_number, key);
        const auto once = [&] {
            if (std::find(seen_once.begin(), seen_once.end(), key) != seen_once.end())
                fail("{}:{}: '{}' is given twice in this section", name, line_number, key);
            seen_once.push_back(key);
        };
        if (section == Section::Directives) {
            if (key == "words") {
                std::size_t from = 0;
                while (from <= value.size()) {
                    const auto comma = std::min(value.find(',', from), value.size());
                    const std::string word = trim(std::string_view(value).substr(from, comma - from));
                    from = comma + 1;
                    const bool letters = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || c == '\'';
                    });
                    if (!letters) fail("{}:{}: directive word '{}' is not one lowercase word of [a-z']", name, line_number, word);
                    if (std::find(rules.directive_words_.begin(), rules.directive_words_.end(), word) == rules.directive_words_.end())
                        rules.directive_words_.emplace_back(word);
                }
            } else if (key == "penalty") {
                once();
                float penalty = 0.0f;
                const auto parsed = std::from_chars(value.data(), value.data() + value.size(), penalty);
                if (parsed.ec != std::errc{} || parsed.ptr != value.data() + value.size() || !std::isfinite(penalty) ||
                    penalty <= 0.0f || penalty > 100.0f)
                    fail("{}:{}: penalty '{}' is not a number in (0, 100]", name, line_number, value);
                rules.directive_penalty_ = penalty;
                penalty_given = true;
            } else {
                fail("{}:{}: unknown key '{}' in [directives] (expected words, penalty)", name, line_number, key);
            }
        } else if (section == Section::Referral) {
            if (key != "reply") fail("{}:{}: unknown key '{}' in [referral] (expected reply)", name, line_number, key);
            patterns.referral.push_back(compile(value, line_number));
        } else {
            SafetyRule& rule = rules.rules_.back();
            if (key == "user") {
                patterns.user.back().push_back(compile(value, line_number));
                ++rule.user_patterns;
            } else if (key == "reply") {
                patterns.reply.back().push_back(compile(value, line_number));
                ++rule.reply_patterns;
            } else if (key == "title" || key == "guidance" || key == "message" || key == "fallback") {
                once();
                std::string& field = key == "title" ? rule.title : key == "guidance" ? rule.guidance : key == "message" ? rule.message : rule.fallback;
                field = value;
            } else if (key == "severity") {
                once();
                if (value == "crisis") {
                    rule.severity = Severity::Crisis;
                } else if (value == "caution") {
                    rule.severity = Severity::Caution;
                } else {
                    fail("{}:{}: severity '{}' is neither 'crisis' nor 'caution'", name, line_number, value);
                }
            } else {
                fail("{}:{}: unknown key '{}' in rule '{}' (expected title, severity, user, reply, guidance, message, fallback)", name,
                     line_number, key, rule.id);
            }
        }
    }
    finish_rule(line_number);
    if (rules.rules_.empty()) fail("{}: no [rule ID] section: a rules file needs at least one rule", name);
    if (!directives_seen || rules.directive_words_.empty() || !penalty_given)
        fail("{}: a [directives] section with 'words' and 'penalty' is required", name);
    if (!referral_seen || patterns.referral.empty()) fail("{}: a [referral] section with at least one 'reply' pattern is required", name);
    return rules;
}

SafetyRules SafetyRules::read(const std::string& path) { return parse(read_file_text(path, kMaxRulesBytes), path); }

std::string_view SafetyRules::builtin_text() { return kBuiltinSafetyRules; }

const SafetyRules& SafetyRules::builtin() {
    static const SafetyRules rules = parse(kBuiltinSafetyRules, "built-in safety rules (configs/safety.rules)");
    return rules;
}

bool SafetyRules::has_rule(std::string_view id) const {
    return std::any_of(rules_.begin(), rules_.end(), [&](const SafetyRule& rule) { return rule.id == id; });
}

const SafetyRule& SafetyRules::rule(std::string_view id) const {
    for (const SafetyRule& rule : rules_)
        if (rule.id == id) return rule;
    std::vector<std::string_view> ids;
    for (const SafetyRule& rule : rules_) ids.push_back(rule.id);
    fail("{}: no rule '{}' (rules: {})", name_, id, fmt::join(ids, ", "));
}

std::vector<SafetyTrigger> SafetyRules::detect(std::string_view user_turn, std::string_view reply) const {
    const std::string user = with_straight_apostrophes(user_turn);
    const std::string answer = with_straight_apostrophes(reply);
    std::vector<SafetyTrigger> triggers;
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const auto user_match = user.empty() ? std::nullopt : first_match(patterns_->user[i], user);
        const auto reply_match = answer.empty() ? std::nullopt : first_match(patterns_->reply[i], answer);
        if (!user_match && !reply_match) continue;
        triggers.push_back({rules_[i].id, rules_[i].severity, user_match.has_value(), reply_match.has_value(),
                            user_match.value_or(""), reply_match.value_or("")});
    }
    return triggers;
}

bool SafetyRules::refers_to_help(std::string_view reply) const {
    return first_match(patterns_->referral, with_straight_apostrophes(reply)).has_value();
}

}  // namespace kindred::data
