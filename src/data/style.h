// data/style.h — style tokens such as "<tone:warm><persona:best_friend>": validated here and placed
// as plain text (never new vocabulary; docs/data.md says why) at the start of the system message or
// of every target assistant turn. At an assistant turn the characters are recorded in
// `prefix_chars` so the trainer can leave them out of the loss (inference pre-fills them).
#pragma once

#include <string>
#include <string_view>

#include "data/example.h"

namespace kindred::data {

enum class StylePlacement { System, Assistant };

struct StyleTokens {
    std::string text;  // one or more <key:value> tags, nothing between them
    StylePlacement placement = StylePlacement::System;
};

// Checks `spec` is one or more "<key:value>" tags with key and value of [a-z0-9_]; throws Error
// naming the offending part otherwise.
StyleTokens parse_style_tokens(std::string_view spec, StylePlacement placement);
// "system" or "assistant"; throws Error otherwise.
StylePlacement parse_style_placement(std::string_view name);
const char* style_placement_name(StylePlacement placement);

// Prefixes the tags and one space to the chosen messages of `example`.
void apply_style(Example& example, const StyleTokens& style);

}  // namespace kindred::data
