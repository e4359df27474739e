// data/style.h — style tokens such as "<tone:warm><persona:best_friend>": a documented set of keys
// and values (style_keys(), docs/controller.md), validated here and placed as plain text (never new
// vocabulary; docs/data.md says why) at the start of the system message or of every target
// assistant turn. At an assistant turn the characters are recorded in `prefix_chars` so the trainer
// can leave them out of the loss (inference pre-fills them).
//
// A trained adapter records the styles its training examples carried in <adapter>/styles.json
// ({"format": "kindred-styles", "version": 1, "styles": [{"tags": "<tone:warm>...", "placement":
// "system"}]}), so inference can refuse a style the model never saw.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/example.h"

namespace kindred::data {

enum class StylePlacement { System, Assistant };

struct StyleTokens {
    std::string text;  // one or more <key:value> tags in style_keys() order, nothing between them
    StylePlacement placement = StylePlacement::System;

    bool operator==(const StyleTokens&) const = default;
};

// One documented style key and the values it may take.
struct StyleKey {
    std::string_view key;
    std::span<const std::string_view> values;
};

// The documented set: tone (warm, calm, gentle, playful) and persona (best_friend, listener,
// companion), in the order tags are written.
std::span<const StyleKey> style_keys();
// "tone: warm|calm|gentle|playful; persona: best_friend|listener|companion", for error messages.
std::string known_styles_text();

// Checks `spec` is one or more "<key:value>" tags, each key of the documented set at most once and
// each value one of its key's; returns the tags in style_keys() order (so "<persona:x><tone:y>" and
// "<tone:y><persona:x>" are one style). Throws Error naming the offending part (and, for an unknown
// key or value, the known ones) otherwise.
StyleTokens parse_style_tokens(std::string_view spec, StylePlacement placement);
// "system" or "assistant"; throws Error otherwise.
StylePlacement parse_style_placement(std::string_view name);
const char* style_placement_name(StylePlacement placement);

// The tags and one space in front of `content`: how a style enters a message, at training and at
// inference alike.
std::string styled(const StyleTokens& style, std::string_view content);
// The style tags `content` starts with when they are followed by a space (as styled() writes
// them), in canonical order; nullopt when it does not start with a well-formed documented style.
std::optional<std::string> leading_style(std::string_view content);

// Prefixes the tags and one space to the chosen messages of `example`.
void apply_style(Example& example, const StyleTokens& style);

// The styles an adapter was trained with (deduplicated, in the order given): written by the SFT run
// beside the adapter, read by inference. read_trained_styles returns an empty list when the folder
// has no styles.json; a malformed file is an Error naming it and the field.
void write_trained_styles(const std::string& adapter_dir, std::span<const StyleTokens> styles);
std::vector<StyleTokens> read_trained_styles(const std::string& adapter_dir);
// The same check on a styles.json document already in memory; `name` starts every message.
std::vector<StyleTokens> parse_trained_styles(std::string_view text, const std::string& name);

}  // namespace kindred::data
