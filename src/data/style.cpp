#include "data/style.h"

#include "core/error.h"

namespace kindred::data {
namespace {

bool is_word(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

}  // namespace

StyleTokens parse_style_tokens(std::string_view spec, StylePlacement placement) {
    if (spec.empty()) fail("style tokens are empty (expected e.g. <tone:warm><persona:best_friend>)");
    std::size_t at = 0;
    while (at < spec.size()) {
        const auto close = spec.find('>', at);
        if (spec[at] != '<' || close == std::string_view::npos) fail("style tokens '{}': expected '<key:value>' at offset {}", spec, at);
        const auto tag = spec.substr(at + 1, close - at - 1);
        const auto colon = tag.find(':');
        if (colon == std::string_view::npos || !is_word(tag.substr(0, colon)) || !is_word(tag.substr(colon + 1))) {
            fail("style tokens '{}': tag '<{}>' is not <key:value> with key and value of [a-z0-9_]", spec, tag);
        }
        at = close + 1;
    }
    return {std::string(spec), placement};
}

StylePlacement parse_style_placement(std::string_view name) {
    if (name == "system") return StylePlacement::System;
    if (name == "assistant") return StylePlacement::Assistant;
    fail("style placement '{}' is neither 'system' nor 'assistant'", name);
}

const char* style_placement_name(StylePlacement placement) {
    return placement == StylePlacement::System ? "system" : "assistant";
}

void apply_style(Example& example, const StyleTokens& style) {
    const std::string prefix = style.text + ' ';
    for (auto& message : example.messages) {
        const bool chosen = style.placement == StylePlacement::System ? message.role == Role::System : message.target;
        if (!chosen) continue;
        message.content.insert(0, prefix);
        if (message.role == Role::Assistant) message.prefix_chars = prefix.size();
    }
}

}  // namespace kindred::data
