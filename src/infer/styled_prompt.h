// infer/styled_prompt.h — style tokens at inference (`--style "<tone:warm><persona:best_friend>"`),
// placed exactly as training placed them (data/style.h): in front of the system message, or, for a
// model trained with assistant placement, pre-filled after the generation prompt so the reply
// continues after them. A style must be one the model was trained with: its adapter's styles.json
// lists them (written by `kindred train sft`); a base model or an adapter without that file knows
// none.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/style.h"
#include "text/chat_template.h"

namespace kindred::infer {

class LoadedModel;

// Parses `spec` (data::parse_style_tokens: documented keys and values only) and checks it against
// the styles `model` was trained with. Errors name the trained styles and the documented set.
data::StyleTokens checked_style(const LoadedModel& model, std::string_view spec);
// The same against the styles of an adapter read elsewhere (`trained`, from its styles.json;
// empty for a base model); `model_name` names the model in the error.
data::StyleTokens checked_style(std::string_view spec, std::span<const data::StyleTokens> trained, const std::string& model_name);

// `messages` with the style applied as training applied it: a system-placed style in front of the
// system message (when there is none, Kindred's persona system message, what `kindred data
// prepare` writes, styled and put first); an assistant-placed one in front of every assistant
// message already in the conversation (the new reply's is pre-filled by styled_prompt_text).
std::vector<text::ChatMessage> styled_messages(std::span<const text::ChatMessage> messages,
                                               const std::optional<data::StyleTokens>& style);

// The chat rendered with the generation prompt (styled_messages applied), then an assistant-placed
// style's tags and space, then `prefill`: the text the model continues from, with the template's
// markup ranges (the style tags, the note and the prefill are text, never markup). A non-empty
// `system_note` is added to the system message after styling ("\n\n" + note), or is the system
// message when there is none.
text::RenderedChat styled_prompt(const LoadedModel& model, std::span<const text::ChatMessage> messages,
                                 const std::optional<data::StyleTokens>& style, std::string_view system_note = {},
                                 std::string_view prefill = {});
// Its token ids (LoadedModel::encode_rendered: message text, note and prefill that spell a control
// token stay text). Without style, note and prefill: exactly LoadedModel::encode_chat.
std::vector<std::int32_t> encode_styled_chat(const LoadedModel& model, std::span<const text::ChatMessage> messages,
                                             const std::optional<data::StyleTokens>& style, std::string_view system_note = {},
                                             std::string_view prefill = {});

}  // namespace kindred::infer
