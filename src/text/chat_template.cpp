// text/chat_template.cpp — native renderers of the supported chat-template families; see the header
// for the rules each reproduces and how assistant spans are chosen.
#include "text/chat_template.h"

#include <algorithm>
#include <array>
#include <ctime>

#include "core/error.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace kindred::text {
namespace {

using Span = std::pair<std::size_t, std::size_t>;

constexpr std::string_view kSmolLM2DefaultSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

// Appends text and records assistant spans and the template's own markup as byte offsets into it.
// add() is for what the template writes; content() for text that comes from a message, which
// never counts as markup (adjacent markup pieces merge into one range).
class ChatWriter {
public:
    void add(std::string_view piece) {
        const std::size_t begin = out_.text.size();
        out_.text.append(piece);
        if (piece.empty()) return;
        if (!out_.markup.empty() && out_.markup.back().second == begin) {
            out_.markup.back().second = out_.text.size();
        } else {
            out_.markup.emplace_back(begin, out_.text.size());
        }
    }
    void content(std::string_view piece) { out_.text.append(piece); }
    void open_span() { span_begin_ = out_.text.size(); }
    void close_span() { out_.assistant_spans.emplace_back(span_begin_, out_.text.size()); }
    RenderedChat finish() { return std::move(out_); }

private:
    RenderedChat out_;
    std::size_t span_begin_ = 0;
};

bool contains(std::string_view text, std::string_view needle) { return text.find(needle) != std::string_view::npos; }

std::string_view strip_newlines_left(std::string_view s) {
    const std::size_t first = s.find_first_not_of('\n');
    return first == std::string_view::npos ? std::string_view{} : s.substr(first);
}
std::string_view strip_newlines_right(std::string_view s) {
    const std::size_t last = s.find_last_not_of('\n');
    return last == std::string_view::npos ? std::string_view{} : s.substr(0, last + 1);
}
std::string_view strip_newlines(std::string_view s) { return strip_newlines_right(strip_newlines_left(s)); }

// Python's str.isspace() set, which Jinja's `trim` (str.strip()) uses. It is not Unicode
// White_Space: it also holds U+001C..U+001F (Python treats them as separators).
constexpr std::array<std::string_view, 29> kPythonWhitespaceUtf8 = {
    "\t", "\n", "\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x1f", " ",
    "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80",
    "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85",
    "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a",
    "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
};

// Python's str.strip() on valid UTF-8 (render checks validity first). Matching whole encodings
// from the back is sound because UTF-8 continuation bytes never start a character.
std::string_view python_strip(std::string_view s) {
    const auto strip_one = [&s](bool front) {
        for (std::string_view ws : kPythonWhitespaceUtf8) {
            if (front ? s.starts_with(ws) : s.ends_with(ws)) {
                s = front ? s.substr(ws.size()) : s.substr(0, s.size() - ws.size());
                return true;
            }
        }
        return false;
    };
    while (strip_one(true)) {}
    while (strip_one(false)) {}
    return s;
}

std::string today_local() {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    if (localtime_r(&now, &local) == nullptr) fail("chat template: cannot read the local date for gpt-oss's 'Current date'");
    std::array<char, 16> buffer{};
    const std::size_t n = std::strftime(buffer.data(), buffer.size(), "%Y-%m-%d", &local);
    return std::string(buffer.data(), n);
}

std::string gpt_oss_date(const RenderOptions& options) {
    const std::string& date = options.current_date;
    if (date.empty()) return today_local();
    const auto digit = [&date](std::size_t i) { return date[i] >= '0' && date[i] <= '9'; };
    const bool shaped = date.size() == 10 && date[4] == '-' && date[7] == '-' && digit(0) && digit(1) && digit(2) &&
                        digit(3) && digit(5) && digit(6) && digit(8) && digit(9);
    const int month = shaped ? (date[5] - '0') * 10 + (date[6] - '0') : 0;
    const int day = shaped ? (date[8] - '0') * 10 + (date[9] - '0') : 0;
    if (!shaped || month < 1 || month > 12 || day < 1 || day > 31) {
        fail("chat template: RenderOptions.current_date '{}' is not a YYYY-MM-DD date", date);
    }
    return date;
}

// ChatML turn shared by SmolLM2 and Qwen3: "<|im_start|>role\ncontent<|im_end|>\n".
void chatml_turn(ChatWriter& out, const ChatMessage& m) {
    out.add("<|im_start|>");
    out.add(m.role);
    out.add("\n");
    const bool assistant = m.role == "assistant";
    if (assistant) out.open_span();
    out.content(m.content);
    out.add("<|im_end|>");
    if (assistant) out.close_span();
    out.add("\n");
}

RenderedChat render_smollm2(std::span<const ChatMessage> messages, bool add_generation_prompt) {
    ChatWriter out;
    if (messages.front().role != "system") {
        out.add("<|im_start|>system\n");
        out.add(kSmolLM2DefaultSystem);
        out.add("<|im_end|>\n");
    }
    for (const ChatMessage& m : messages) chatml_turn(out, m);
    if (add_generation_prompt) out.add("<|im_start|>assistant\n");
    return out.finish();
}

// Qwen3 assistant turn: reasoning comes from `thinking`, else from <think>...</think> in content.
void qwen3_assistant_turn(ChatWriter& out, const ChatMessage& m, bool after_last_query, bool is_last) {
    std::string_view content = m.content;
    std::string_view reasoning = m.thinking;
    constexpr std::string_view kClose = "</think>";
    constexpr std::string_view kOpen = "<think>";
    if (reasoning.empty()) {
        if (const std::size_t last_close = content.rfind(kClose); last_close != std::string_view::npos) {
            std::string_view before = strip_newlines_right(content.substr(0, content.find(kClose)));
            if (const std::size_t open = before.rfind(kOpen); open != std::string_view::npos) {
                before = before.substr(open + kOpen.size());
            }
            reasoning = strip_newlines_left(before);
            content = strip_newlines_left(content.substr(last_close + kClose.size()));
        }
    }
    out.add("<|im_start|>assistant\n");
    if (after_last_query && (is_last || !reasoning.empty())) {
        const std::string_view shown = strip_newlines(reasoning);
        // The empty block is what the non-thinking generation prompt supplies, so it is not trained.
        if (!shown.empty()) out.open_span();
        out.add("<think>\n");
        out.content(shown);
        out.add("\n</think>\n\n");
        if (shown.empty()) out.open_span();
        out.content(strip_newlines_left(content));
    } else {
        out.open_span();
        out.content(content);
    }
    out.add("<|im_end|>");
    out.close_span();
    out.add("\n");
}

RenderedChat render_qwen3(std::span<const ChatMessage> messages, bool add_generation_prompt) {
    ChatWriter out;
    if (messages.front().role == "system") chatml_turn(out, messages.front());
    // The last user message that is not a wrapped tool response; assistant turns after it keep
    // their reasoning. With none, the template's default is the last index.
    std::size_t last_query = messages.size() - 1;
    for (std::size_t i = messages.size(); i-- > 0;) {
        const ChatMessage& m = messages[i];
        const std::string_view c = m.content;
        if (m.role == "user" && !(c.starts_with("<tool_response>") && c.ends_with("</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user" || (m.role == "system" && i > 0)) {
            chatml_turn(out, m);
        } else if (m.role == "assistant") {
            qwen3_assistant_turn(out, m, i > last_query, i + 1 == messages.size());
        }
        // developer: the template has no branch for it, so it renders nothing.
    }
    if (add_generation_prompt) out.add("<|im_start|>assistant\n<think>\n\n</think>\n\n");
    return out.finish();
}

RenderedChat render_gpt_oss(std::span<const ChatMessage> messages, bool add_generation_prompt,
                            const RenderOptions& options) {
    ChatWriter out;
    out.add("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
            "Knowledge cutoff: 2024-06\nCurrent date: ");
    out.add(gpt_oss_date(options));
    out.add("\n\nReasoning: medium\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>");
    std::size_t first = 0;
    if (messages.front().role == "system" || messages.front().role == "developer") {
        first = 1;
        if (!messages.front().content.empty()) {
            out.add("<|start|>developer<|message|># Instructions\n\n");
            out.content(messages.front().content);
            out.add("\n\n<|end|>");
        }
    }
    for (std::size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user") {
            out.add("<|start|>user<|message|>");
            out.content(m.content);
            out.add("<|end|>");
        } else if (m.role == "assistant") {
            for (const auto& [field, text] : {std::pair{"content", std::string_view(m.content)},
                                              std::pair{"thinking", std::string_view(m.thinking)}}) {
                if (contains(text, "<|channel|>analysis<|message|>") || contains(text, "<|channel|>final<|message|>")) {
                    fail("chat template gpt-oss: message {} (assistant) has <|channel|> tags in its {}; pass analysis "
                         "text in `thinking` and final text in `content`, without harmony markup",
                         i, field);
                }
            }
            out.add("<|start|>assistant");
            out.open_span();
            // Only a training chat's final turn keeps its analysis and ends with <|return|>.
            const bool final_training_turn = i + 1 == messages.size() && !add_generation_prompt;
            if (final_training_turn && !m.thinking.empty()) {
                out.add("<|channel|>analysis<|message|>");
                out.content(m.thinking);
                out.add("<|end|><|start|>assistant");
            }
            out.add("<|channel|>final<|message|>");
            out.content(m.content);
            out.add(final_training_turn ? "<|return|>" : "<|end|>");
            out.close_span();
        }
        // A system or developer message after the first renders nothing in the template.
    }
    if (add_generation_prompt) out.add("<|start|>assistant");
    return out.finish();
}

RenderedChat render_llama3(std::span<const ChatMessage> messages, bool add_generation_prompt) {
    ChatWriter out;
    out.add("<|begin_of_text|>");
    for (const ChatMessage& m : messages) {
        out.add("<|start_header_id|>");
        out.add(m.role);
        out.add("<|end_header_id|>\n\n");
        const bool assistant = m.role == "assistant";
        if (assistant) out.open_span();
        out.content(python_strip(m.content));
        out.add("<|eot_id|>");
        if (assistant) out.close_span();
    }
    if (add_generation_prompt) out.add("<|start_header_id|>assistant<|end_header_id|>\n\n");
    return out.finish();
}

RenderedChat render_gemma3(std::span<const ChatMessage> messages, bool add_generation_prompt) {
    ChatWriter out;
    out.add("<bos>");
    const bool system_first = messages.front().role == "system";
    const std::span<const ChatMessage> turns = messages.subspan(system_first ? 1 : 0);
    for (std::size_t i = 0; i < turns.size(); ++i) {
        const ChatMessage& m = turns[i];
        if ((m.role == "user") != (i % 2 == 0)) {
            fail("chat template Gemma 3: message {} ({}): conversation roles must alternate user/assistant/user/"
                 "assistant/... after an optional first system message",
                 i + (system_first ? 1 : 0), m.role);
        }
        const bool assistant = m.role == "assistant";
        out.add("<start_of_turn>");
        out.add(assistant ? std::string_view("model") : std::string_view(m.role));
        out.add("\n");
        if (i == 0 && system_first) {
            out.content(messages.front().content);
            out.add("\n\n");
        }
        if (assistant) out.open_span();
        out.content(python_strip(m.content));
        out.add("<end_of_turn>");
        if (assistant) out.close_span();
        out.add("\n");
    }
    if (add_generation_prompt) out.add("<start_of_turn>model\n");
    return out.finish();
}

// Distinctive literal fragments of each family's template (string literals, not Jinja syntax,
// so whitespace-control variants still match). `absent` rules out near relatives that render
// differently: Llama 3.1+ (knowledge date, ipython tools), other ChatML models.
struct Signature {
    ChatFormat format;
    std::vector<std::string_view> present;
    std::vector<std::string_view> absent;
};

const std::vector<Signature>& signatures() {
    static const std::vector<Signature> all = {
        {ChatFormat::SmolLM2, {"<|im_start|>", "<|im_end|>", kSmolLM2DefaultSystem}, {"<think>", "tools"}},
        {ChatFormat::Qwen3,
         {"<|im_start|>", "<|im_end|>", "<think>", "</think>", "reasoning_content", "enable_thinking",
          "last_query_index", "<tool_response>"},
         {}},
        {ChatFormat::GptOss,
         {"<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>",
          "You are ChatGPT, a large language model trained by OpenAI.", "Knowledge cutoff: 2024-06",
          "Valid channels: analysis, commentary, final", "# Instructions", "strftime_now"},
         {}},
        {ChatFormat::Llama3,
         {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "bos_token", "trim"},
         {"Cutting Knowledge Date", "ipython", "<|python_tag|>", "tools", "<think>"}},
        {ChatFormat::Gemma3,
         {"<start_of_turn>", "<end_of_turn>", "first_user_prefix", "model", "bos_token", "trim",
          "Conversation roles must alternate"},
         {"tools", "<think>"}},
    };
    return all;
}

void validate(std::span<const ChatMessage> messages, std::string_view family) {
    if (messages.empty()) fail("chat template {}: the chat has no messages", family);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role != "system" && m.role != "developer" && m.role != "user" && m.role != "assistant") {
            fail("chat template {}: message {} has role '{}'; expected system, developer, user or assistant", family,
                 i, m.role);
        }
        for (const auto& [field, text] : {std::pair{"content", std::string_view(m.content)},
                                          std::pair{"thinking", std::string_view(m.thinking)}}) {
            if (!utf8_is_complete(text)) fail("chat template {}: message {} ({}) has invalid UTF-8 in its {}", family, i, m.role, field);
        }
    }
}

}  // namespace

ChatTemplate ChatTemplate::detect(std::string_view template_source, std::string_view model_name) {
    std::vector<ChatFormat> matches;
    for (const Signature& s : signatures()) {
        const auto has = [&](std::string_view f) { return contains(template_source, f); };
        if (std::all_of(s.present.begin(), s.present.end(), has) && std::none_of(s.absent.begin(), s.absent.end(), has)) {
            matches.push_back(s.format);
        }
    }
    if (matches.size() != 1) {
        fail("model '{}': its chat template ({} bytes) is not one Kindred renders; supported families: SmolLM2 "
             "(ChatML with SmolLM's default system prompt), Qwen3 (non-thinking mode), gpt-oss (harmony), Llama 3 "
             "(Meta-Llama-3-Instruct) and Gemma 3",
             model_name, template_source.size());
    }
    return ChatTemplate(matches.front());
}

ChatTemplate ChatTemplate::of(ChatFormat format) {
    switch (format) {
        case ChatFormat::SmolLM2:
        case ChatFormat::Qwen3:
        case ChatFormat::GptOss:
        case ChatFormat::Llama3:
        case ChatFormat::Gemma3: return ChatTemplate(format);
    }
    fail("chat template: unknown ChatFormat value {}", static_cast<int>(format));
}

std::string_view ChatTemplate::name() const {
    switch (format_) {
        case ChatFormat::SmolLM2: return "SmolLM2";
        case ChatFormat::Qwen3: return "Qwen3";
        case ChatFormat::GptOss: return "gpt-oss";
        case ChatFormat::Llama3: return "Llama 3";
        case ChatFormat::Gemma3: return "Gemma 3";
    }
    return "unknown";
}

RenderedChat ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                  const RenderOptions& options) const {
    validate(messages, name());
    switch (format_) {
        case ChatFormat::SmolLM2: return render_smollm2(messages, add_generation_prompt);
        case ChatFormat::Qwen3: return render_qwen3(messages, add_generation_prompt);
        case ChatFormat::GptOss: return render_gpt_oss(messages, add_generation_prompt, options);
        case ChatFormat::Llama3: return render_llama3(messages, add_generation_prompt);
        case ChatFormat::Gemma3: return render_gemma3(messages, add_generation_prompt);
    }
    fail("chat template: unknown ChatFormat value {}", static_cast<int>(format_));
}

std::vector<std::string> ChatTemplate::stop_strings() const {
    switch (format_) {
        case ChatFormat::SmolLM2: return {"<|im_end|>"};
        case ChatFormat::Qwen3: return {"<|im_end|>", "<|endoftext|>"};
        case ChatFormat::GptOss: return {"<|return|>", "<|call|>", "<|endoftext|>"};
        case ChatFormat::Llama3: return {"<|eot_id|>", "<|end_of_text|>"};
        case ChatFormat::Gemma3: return {"<end_of_turn>", "<eos>"};
    }
    return {};
}

std::vector<std::uint8_t> assistant_token_mask(std::span<const std::pair<std::size_t, std::size_t>> token_spans,
                                               const RenderedChat& rendered) {
    const std::size_t size = rendered.text.size();
    const auto& spans = rendered.assistant_spans;
    for (std::size_t i = 0; i < spans.size(); ++i) {
        const auto [begin, end] = spans[i];
        if (begin > end || end > size || (i > 0 && begin < spans[i - 1].second)) {
            fail("assistant mask: assistant span {} [{}, {}) is reversed, overlaps the previous one or lies outside "
                 "the rendered chat ({} bytes)",
                 i, begin, end, size);
        }
    }
    std::vector<std::uint8_t> mask(token_spans.size(), 0);
    for (std::size_t t = 0; t < token_spans.size(); ++t) {
        const auto [begin, end] = token_spans[t];
        if (begin > end || end > size) {
            fail("assistant mask: token {} has byte span [{}, {}) outside the rendered chat ({} bytes)", t, begin, end,
                 size);
        }
        if (begin == end) continue;
        // The last assistant span starting at or before the token is the only one that can hold it.
        const auto after = std::upper_bound(spans.begin(), spans.end(), begin,
                                            [](std::size_t b, const Span& s) { return b < s.first; });
        if (after != spans.begin() && end <= std::prev(after)->second) mask[t] = 1;
    }
    return mask;
}

std::vector<std::uint8_t> assistant_token_mask(const Encoding& encoding, const RenderedChat& rendered) {
    if (encoding.ids.size() != encoding.spans.size()) {
        fail("assistant mask: encoding has {} ids but {} spans", encoding.ids.size(), encoding.spans.size());
    }
    return assistant_token_mask(encoding.spans, rendered);
}

}  // namespace kindred::text
