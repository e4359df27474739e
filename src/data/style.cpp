#include "data/style.h"

#include <algorithm>
#include <array>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace kindred::data {
namespace {

constexpr std::array<std::string_view, 4> kTones{"warm", "calm", "gentle", "playful"};
constexpr std::array<std::string_view, 3> kPersonas{"best_friend", "listener", "companion"};
constexpr std::array<StyleKey, 2> kStyleKeys{{{"tone", kTones}, {"persona", kPersonas}}};

// A styles.json lists a handful of styles; anything near this size is not one.
constexpr std::uintmax_t kMaxStylesBytes = 1u << 20;

bool is_word(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

// The tags of `spec` in canonical order; throws Error as parse_style_tokens documents.
std::string canonical_tags(std::string_view spec) {
    if (spec.empty()) fail("style tokens are empty (expected e.g. <tone:warm><persona:best_friend>)");
    std::array<std::string_view, kStyleKeys.size()> chosen{};
    std::size_t at = 0;
    while (at < spec.size()) {
        const auto close = spec.find('>', at);
        if (spec[at] != '<' || close == std::string_view::npos) fail("style tokens '{}': expected '<key:value>' at offset {}", spec, at);
        const auto tag = spec.substr(at + 1, close - at - 1);
        const auto colon = tag.find(':');
        if (colon == std::string_view::npos || !is_word(tag.substr(0, colon)) || !is_word(tag.substr(colon + 1))) {
            fail("style tokens '{}': tag '<{}>' is not <key:value> with key and value of [a-z0-9_]", spec, tag);
        }
        const auto key = tag.substr(0, colon);
        const auto value = tag.substr(colon + 1);
        const auto known = std::find_if(kStyleKeys.begin(), kStyleKeys.end(), [&](const StyleKey& k) { return k.key == key; });
        if (known == kStyleKeys.end()) fail("style tokens '{}': unknown key '{}' (known styles: {})", spec, key, known_styles_text());
        if (std::find(known->values.begin(), known->values.end(), value) == known->values.end()) {
            fail("style tokens '{}': unknown {} '{}' (known styles: {})", spec, key, value, known_styles_text());
        }
        auto& slot = chosen[static_cast<std::size_t>(known - kStyleKeys.begin())];
        if (!slot.empty()) fail("style tokens '{}': key '{}' is given twice", spec, key);
        slot = value;
        at = close + 1;
    }
    std::string text;
    for (std::size_t i = 0; i < kStyleKeys.size(); ++i) {
        if (!chosen[i].empty()) text += fmt::format("<{}:{}>", kStyleKeys[i].key, chosen[i]);
    }
    return text;
}

}  // namespace

std::span<const StyleKey> style_keys() { return kStyleKeys; }

std::string known_styles_text() {
    std::string text;
    for (const StyleKey& key : kStyleKeys) {
        if (!text.empty()) text += "; ";
        text += fmt::format("{}: {}", key.key, fmt::join(key.values, "|"));
    }
    return text;
}

StyleTokens parse_style_tokens(std::string_view spec, StylePlacement placement) { return {canonical_tags(spec), placement}; }

StylePlacement parse_style_placement(std::string_view name) {
    if (name == "system") return StylePlacement::System;
    if (name == "assistant") return StylePlacement::Assistant;
    fail("style placement '{}' is neither 'system' nor 'assistant'", name);
}

const char* style_placement_name(StylePlacement placement) {
    return placement == StylePlacement::System ? "system" : "assistant";
}

std::string styled(const StyleTokens& style, std::string_view content) {
    std::string text = style.text + ' ';
    text += content;
    return text;
}

std::optional<std::string> leading_style(std::string_view content) {
    if (!content.starts_with('<')) return std::nullopt;
    const auto space = content.find(' ');
    if (space == std::string_view::npos || content[space - 1] != '>') return std::nullopt;
    try {
        return canonical_tags(content.substr(0, space));
    } catch (const Error&) {
        return std::nullopt;  // text that merely looks like tags is content, not a style
    }
}

void apply_style(Example& example, const StyleTokens& style) {
    for (auto& message : example.messages) {
        const bool chosen = style.placement == StylePlacement::System ? message.role == Role::System : message.target;
        if (!chosen) continue;
        message.content = styled(style, message.content);
        if (message.role == Role::Assistant) message.prefix_chars = style.text.size() + 1;
    }
}

void write_trained_styles(const std::string& adapter_dir, std::span<const StyleTokens> styles) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    std::vector<StyleTokens> seen;
    for (const StyleTokens& style : styles) {
        if (std::find(seen.begin(), seen.end(), style) != seen.end()) continue;
        seen.push_back(style);
        list.push_back({{"tags", style.text}, {"placement", style_placement_name(style.placement)}});
    }
    const nlohmann::ordered_json document = {{"format", "kindred-styles"}, {"version", 1}, {"styles", list}};
    write_file_atomically(adapter_dir + "/styles.json", document.dump(2) + "\n");
}

std::vector<StyleTokens> parse_trained_styles(std::string_view text, const std::string& name) {
    const nlohmann::json document = parse_json(text, name);
    if (!document.is_object()) fail("{}: expected a JSON object", name);
    if (!document.contains("format") || document["format"] != "kindred-styles") fail("{}: 'format' is not \"kindred-styles\"", name);
    if (!document.contains("version") || document["version"] != 1) fail("{}: 'version' is not 1 (the only version there is)", name);
    if (!document.contains("styles") || !document["styles"].is_array()) fail("{}: 'styles' is not an array", name);
    for (const auto& [key, value] : document.items()) {
        if (key != "format" && key != "version" && key != "styles") fail("{}: unknown key '{}'", name, key);
    }
    std::vector<StyleTokens> styles;
    const auto& list = document["styles"];
    for (std::size_t i = 0; i < list.size(); ++i) {
        const auto& entry = list[i];
        const std::string where = fmt::format("{}: styles[{}]", name, i);
        if (!entry.is_object() || entry.size() != 2 || !entry.contains("tags") || !entry.contains("placement") ||
            !entry["tags"].is_string() || !entry["placement"].is_string()) {
            fail("{}: expected {{\"tags\": string, \"placement\": string}}", where);
        }
        try {
            StyleTokens style = parse_style_tokens(entry["tags"].get<std::string>(), parse_style_placement(entry["placement"].get<std::string>()));
            if (style.text != entry["tags"].get<std::string>()) fail("tags are not in canonical order (expected '{}')", style.text);
            if (std::find(styles.begin(), styles.end(), style) != styles.end()) fail("listed twice");
            styles.push_back(std::move(style));
        } catch (const Error& error) {
            fail("{}: {}", where, error.what());
        }
    }
    return styles;
}

std::vector<StyleTokens> read_trained_styles(const std::string& adapter_dir) {
    const std::string path = adapter_dir + "/styles.json";
    std::error_code error;
    if (!std::filesystem::exists(path, error)) return {};
    return parse_trained_styles(read_file_text(path, kMaxStylesBytes), path);
}

}  // namespace kindred::data
