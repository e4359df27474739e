#include "eval/side_by_side.h"

#include <algorithm>

#include "core/error.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "infer/styled_prompt.h"

namespace kindred::eval {
namespace {

void check_conversations(const std::vector<std::vector<text::ChatMessage>>& conversations, const SideBySideOptions& options) {
    if (options.max_tokens < 1) fail("side by side: max tokens must be >= 1, got {}", options.max_tokens);
    for (std::size_t i = 0; i < conversations.size(); ++i) {
        if (conversations[i].empty() || conversations[i].back().role != "user") {
            fail("side by side: conversation {} must end with a user message", i);
        }
    }
}

}  // namespace

std::string model_reply(infer::LoadedModel& model, const std::vector<text::ChatMessage>& conversation,
                        const SideBySideOptions& options, const std::optional<data::StyleTokens>& style) {
    check_conversations({conversation}, options);
    std::vector<text::ChatMessage> messages;
    if (!options.system_prompt.empty() && conversation.front().role != "system") {
        messages.push_back({"system", options.system_prompt, {}});
    }
    messages.insert(messages.end(), conversation.begin(), conversation.end());
    const std::vector<std::int32_t> prompt = infer::encode_styled_chat(model, messages, style);
    const std::int64_t model_context = model.decoder().config().context_length;
    const auto prompt_size = static_cast<std::int64_t>(prompt.size());
    if (prompt_size >= model_context) {
        fail("side by side: a conversation has {} tokens but the model's context holds {}", prompt_size, model_context);
    }
    infer::Session session(model.decoder(), model.tokenizer(), std::min(model_context, prompt_size + options.max_tokens));
    infer::GenerationOptions generation;
    generation.sampling = options.sampling;
    generation.max_tokens = options.max_tokens;
    generation.stop_tokens = model.stop_tokens();
    generation.stop_strings = model.stop_strings();
    generation.harmony = model.harmony();
    return session.generate(prompt, generation).text;
}

std::vector<SideBySide> side_by_side(infer::LoadedModel& base, infer::LoadedModel& tuned,
                                     const std::vector<std::vector<text::ChatMessage>>& conversations,
                                     const SideBySideOptions& options) {
    check_conversations(conversations, options);
    std::vector<SideBySide> pairs;
    for (const auto& conversation : conversations) {
        pairs.push_back({conversation, model_reply(base, conversation, options, std::nullopt), model_reply(tuned, conversation, options, options.tuned_style)});
    }
    return pairs;
}

std::vector<SideBySide> side_by_side(infer::LoadedModel& tuned, const std::vector<std::vector<text::ChatMessage>>& conversations,
                                     const SideBySideOptions& options) {
    if (tuned.decoder().adapter() == nullptr) fail("side by side: {} has no adapter to compare against its base", tuned.path());
    check_conversations(conversations, options);
    std::vector<SideBySide> pairs;
    for (const auto& conversation : conversations) {
        SideBySide pair{conversation, {}, model_reply(tuned, conversation, options, options.tuned_style)};
        {
            const model::Decoder::AdapterDetached base(tuned.decoder());
            pair.base_reply = model_reply(tuned, conversation, options, std::nullopt);
        }
        pairs.push_back(std::move(pair));
    }
    return pairs;
}

}  // namespace kindred::eval
