// text/chat_template.h — the chat templates Kindred supports, written natively (no general Jinja
// engine), plus which bytes of a rendered chat a model is trained on.
//
// Each family reproduces, byte for byte, what transformers' `apply_chat_template(..., tokenize=False)`
// renders with that family's real template for plain conversations (no tools, no documents):
//   - SmolLM2: ChatML; a default system prompt ("You are a helpful AI assistant named SmolLM, trained
//     by Hugging Face") is inserted when the first message is not a system message.
//   - Qwen3: ChatML with <think> blocks, non-thinking mode (enable_thinking=False): the generation
//     prompt ends with an empty "<think>\n\n</think>\n\n"; assistant turns after the last user query
//     show their reasoning, earlier ones drop it; `thinking` empty means "no reasoning_content", in
//     which case reasoning is taken from "<think>...</think>" inside the content, as the template does.
//     A developer message renders nothing (the template has no such role).
//   - GptOss: harmony. A system message ("You are ChatGPT...", knowledge cutoff, current date,
//     reasoning effort medium, valid channels) always comes first; a leading system or developer
//     message becomes the developer "# Instructions"; later system/developer messages render
//     nothing. The final assistant turn of a training chat (no generation prompt) ends with
//     <|return|> and carries its `thinking` in an analysis message; earlier turns drop thinking
//     and end with <|end|>. "<|channel|>analysis<|message|>"/"<|channel|>final<|message|>" inside
//     content or thinking is an Error, as in the template.
//   - Llama3: Meta-Llama-3-8B-Instruct: <|begin_of_text|>, "<|start_header_id|>role<|end_header_id|>\n\n",
//     content stripped of Unicode whitespace exactly like Python's str.strip(), then <|eot_id|>.
//   - Gemma3: Gemma 3 instruction-tuned models: <bos>, then "<start_of_turn>role\n" + content stripped
//     like Python's str.strip() + "<end_of_turn>\n" per message, the assistant's role written
//     "model"; a leading system message is no turn of its own: its (unstripped) content + "\n\n"
//     opens the first turn's text. After it, roles must alternate user, assistant, user, ... (Error
//     otherwise, as the template raises); any role but user may stand at an odd position and is
//     written as given. Generation prompt "<start_of_turn>model\n".
// `thinking` is read by Qwen3 and GptOss only; an empty `thinking` means none was given.
// The goldens (tools/goldens/chat_templates.py -> tests/goldens/chat_templates/) pin all of this.
//
// Assistant spans (what `assistant_spans` covers), like transformers' {% generation %} blocks: for
// each assistant message, exactly the bytes the model has to produce after this family's
// generation prompt, through the end-of-turn marker that closes the turn, so a model trained on
// them learns to stop; the role header (= the generation prompt) and the newline that follows the
// end marker are not part of it.
//   - SmolLM2: content + "<|im_end|>".
//   - Qwen3: content + "<|im_end|>"; when the turn shows a non-empty <think> block, that block is
//     part of the span too (the model generates it); an empty "<think>\n\n</think>\n\n" is not,
//     because the non-thinking generation prompt already supplies it.
//   - GptOss: everything after "<|start|>assistant": "<|channel|>final<|message|>" + content +
//     "<|end|>" or "<|return|>" (with its analysis message in front when one is rendered, which
//     includes the "<|start|>assistant" between the two messages: the model emits that too).
//   - Llama3: trimmed content + "<|eot_id|>".
//   - Gemma3: trimmed content + "<end_of_turn>".
// assistant_token_mask marks the tokens whose byte span lies entirely inside an assistant span;
// a token straddling a span edge (possible only when content starts or ends with text that merges
// with the surrounding markup) is left out, unlike transformers, which would include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kindred::text {

struct Encoding;  // text/tokenizer.h

struct ChatMessage {
    std::string role;      // system | developer | user | assistant; anything else is an Error
    std::string content;
    std::string thinking;  // gpt-oss analysis / Qwen3 reasoning; empty = none
};

enum class ChatFormat { SmolLM2, Qwen3, GptOss, Llama3, Gemma3 };

struct RenderedChat {
    std::string text;
    // Byte [begin, end) of each assistant turn's trained part, in order, non-overlapping.
    std::vector<std::pair<std::size_t, std::size_t>> assistant_spans;
    // Byte [begin, end) of each stretch the template wrote itself (role headers, end-of-turn
    // markers, default system prompts), in order, disjoint; message content and thinking are never
    // inside. Tokenizer::encode_with_markup matches control tokens only here, so only the template
    // writes them: a message that spells "<|im_end|>" cannot end its turn or open another.
    std::vector<std::pair<std::size_t, std::size_t>> markup;
};

struct RenderOptions {
    // GptOss only: the "Current date: YYYY-MM-DD" line. transformers fills it from
    // strftime_now("%Y-%m-%d") (the local date at render time); empty here means the same.
    // Set it to make a render reproducible (the goldens do). Anything but YYYY-MM-DD is an Error.
    std::string current_date;
};

class ChatTemplate {
public:
    // Identifies the family from a template's source text (GGUF tokenizer.chat_template or
    // tokenizer_config.json chat_template) by distinctive markers, so whitespace variants of a
    // family's template still match; anything else (or several families at once) is an Error
    // that names `model_name` and lists the supported families.
    static ChatTemplate detect(std::string_view template_source, std::string_view model_name);
    static ChatTemplate of(ChatFormat format);

    ChatFormat format() const { return format_; }
    std::string_view name() const;

    // An empty chat, or a message with an unknown role, is an Error naming the message index.
    RenderedChat render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                        const RenderOptions& options = {}) const;

    // End-of-turn markers generation stops at (the family's generation_config eos tokens).
    std::vector<std::string> stop_strings() const;

    // Whether the conversation after an optional first system message must open with a user turn
    // and alternate (Gemma 3; render refuses anything else, as the template does).
    bool requires_user_first() const { return format_ == ChatFormat::Gemma3; }

private:
    explicit ChatTemplate(ChatFormat format) : format_(format) {}
    ChatFormat format_;
};

// Per-token 0/1 mask: 1 where a token's byte span lies inside an assistant span. Token spans
// must index `rendered.text` (Error otherwise); empty token spans (added specials) get 0.
std::vector<std::uint8_t> assistant_token_mask(const Encoding& encoding, const RenderedChat& rendered);
std::vector<std::uint8_t> assistant_token_mask(std::span<const std::pair<std::size_t, std::size_t>> token_spans,
                                               const RenderedChat& rendered);

}  // namespace kindred::text
