#include "infer/styled_prompt.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "data/source.h"
#include "infer/loaded_model.h"

namespace kindred::infer {

data::StyleTokens checked_style(const LoadedModel& model, std::string_view spec) {
    const std::vector<data::StyleTokens> trained =
        model.adapter_path().empty() ? std::vector<data::StyleTokens>{} : data::read_trained_styles(model.adapter_path());
    return checked_style(spec, trained, model.adapter_path().empty() ? model.path() : model.adapter_path());
}

data::StyleTokens checked_style(std::string_view spec, std::span<const data::StyleTokens> trained, const std::string& model_name) {
    const data::StyleTokens wanted = data::parse_style_tokens(spec, data::StylePlacement::System);
    for (const data::StyleTokens& style : trained) {
        if (style.text == wanted.text) return style;  // with the placement it was trained in
    }
    std::vector<std::string> names;
    for (const data::StyleTokens& style : trained) names.push_back(style.text);
    if (names.empty()) {
        fail("style '{}': {} was not trained with style tokens (an adapter trained with them lists them in styles.json); "
             "known styles: {}",
             wanted.text, model_name, data::known_styles_text());
    }
    fail("style '{}': {} was trained with {} only (known styles: {})", wanted.text, model_name, fmt::join(names, ", "),
         data::known_styles_text());
}

std::vector<text::ChatMessage> styled_messages(std::span<const text::ChatMessage> messages,
                                               const std::optional<data::StyleTokens>& style) {
    std::vector<text::ChatMessage> out(messages.begin(), messages.end());
    if (!style) return out;
    if (style->placement == data::StylePlacement::Assistant) {
        // Training styled every target reply, so the replies already in the conversation get it too.
        for (auto& message : out)
            if (message.role == "assistant") message.content = data::styled(*style, message.content);
        return out;
    }
    if (!out.empty() && out.front().role == "system") {
        out.front().content = data::styled(*style, out.front().content);
    } else {
        out.insert(out.begin(), {"system", data::styled(*style, data::LoadOptions{}.system_prompt), {}});
    }
    return out;
}

text::RenderedChat styled_prompt(const LoadedModel& model, std::span<const text::ChatMessage> messages,
                                 const std::optional<data::StyleTokens>& style, std::string_view system_note, std::string_view prefill) {
    std::vector<text::ChatMessage> chat = styled_messages(messages, style);
    if (!system_note.empty()) {
        if (!chat.empty() && chat.front().role == "system") {
            chat.front().content += "\n\n";
            chat.front().content += system_note;
        } else {
            chat.insert(chat.begin(), {"system", std::string(system_note), {}});
        }
    }
    text::RenderedChat rendered = model.require_chat_template().render(chat, /*add_generation_prompt=*/true);
    if (style && style->placement == data::StylePlacement::Assistant) rendered.text += style->text + ' ';
    rendered.text += prefill;
    return rendered;
}

std::vector<std::int32_t> encode_styled_chat(const LoadedModel& model, std::span<const text::ChatMessage> messages,
                                             const std::optional<data::StyleTokens>& style, std::string_view system_note,
                                             std::string_view prefill) {
    return model.encode_rendered(styled_prompt(model, messages, style, system_note, prefill));
}

}  // namespace kindred::infer
