// fuzz/fuzz_chat_template.cpp — libFuzzer entry for the native chat renderers: family detection
// over arbitrary template text, and rendering of arbitrary conversations (roles, invalid UTF-8,
// harmony markup, <think> blocks, dates) in every family. Each must succeed or throw
// kindred::Error; a render's assistant spans must be ordered and inside its text, and the mask
// built from one span per byte must mark exactly the bytes those spans cover.
// Input layout: byte 0 picks the family, byte 1 holds flags, the rest is split on '\0' into
// (role, content, thinking) triples; the whole input is also offered to detect().
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "text/chat_template.h"

namespace {

std::vector<kindred::text::ChatMessage> messages_from(std::string_view rest) {
    std::vector<std::string_view> fields;
    for (std::size_t at = 0; at <= rest.size();) {
        const std::size_t end = std::min(rest.find('\0', at), rest.size());
        fields.push_back(rest.substr(at, end - at));
        at = end + 1;
    }
    std::vector<kindred::text::ChatMessage> messages;
    for (std::size_t i = 0; i < fields.size(); i += 3) {
        kindred::text::ChatMessage m;
        m.role = fields[i];
        if (i + 1 < fields.size()) m.content = fields[i + 1];
        if (i + 2 < fields.size()) m.thinking = fields[i + 2];
        messages.push_back(std::move(m));
    }
    return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace kindred::text;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        (void)ChatTemplate::detect(input, "fuzz");
    } catch (const kindred::Error&) {
    }
    if (size < 2) return 0;
    constexpr ChatFormat kFormats[] = {ChatFormat::SmolLM2, ChatFormat::Qwen3, ChatFormat::GptOss, ChatFormat::Llama3};
    const ChatTemplate chat = ChatTemplate::of(kFormats[data[0] % 4]);
    const bool generation_prompt = (data[1] & 1) != 0;
    RenderOptions options;
    options.current_date = (data[1] & 2) != 0 ? "2025-01-31" : "1999-13-01";
    const auto messages = messages_from(input.substr(2));
    try {
        const RenderedChat rendered = chat.render(messages, generation_prompt, options);
        std::vector<std::pair<std::size_t, std::size_t>> bytes(rendered.text.size());
        for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = {i, i + 1};
        const std::vector<std::uint8_t> mask = assistant_token_mask(bytes, rendered);
        std::size_t covered = 0;
        for (const auto& [begin, end] : rendered.assistant_spans) covered += end - begin;
        std::size_t marked = 0;
        for (const std::uint8_t bit : mask) marked += bit;
        if (marked != covered) __builtin_trap();
    } catch (const kindred::Error&) {
    }
    return 0;
}
