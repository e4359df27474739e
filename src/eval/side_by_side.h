// eval/side_by_side.h — the base model's and the fine-tuned model's replies to the same held-out
// conversations, for the demo report. Both decode with the same sampling settings and seed
// (default: infer::recommended_sampling(), the product's decoding with repetition control; greedy,
// temperature 0 with no penalty, where a test needs the reference implementation's tokens).
// Two ways to get the pair: two LoadedModels (any two models sharing nothing), or one LoadedModel
// with an adapter that is detached for the base reply and attached again for the tuned one: the
// base weights are mapped once and the decoder's forward without an adapter is exactly the base
// model's (model/decoder.h), so this is the cheaper choice whenever the tuned model is base+LoRA.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/style.h"
#include "infer/sampler.h"
#include "text/chat_template.h"

namespace kindred::infer { class LoadedModel; }

namespace kindred::eval {

struct SideBySideOptions {
    std::int64_t max_tokens = 160;  // per reply
    // Put first as a system message when not empty and a conversation has none; empty = the
    // chat template's own default (SmolLM2 inserts one).
    std::string system_prompt;
    infer::SamplingParams sampling = infer::recommended_sampling();
    // The style the tuned model was trained with (infer/styled_prompt.h); the base model answers
    // without it, never having seen one.
    std::optional<data::StyleTokens> tuned_style;
};

struct SideBySide {
    std::vector<text::ChatMessage> conversation;  // as given (without the added system prompt)
    std::string base_reply;
    std::string tuned_reply;
};

// One model's reply to one conversation (ending with a user message), as the pairs below are
// made (with `style`, or none): for a third model beside a pair.
std::string model_reply(infer::LoadedModel& model, const std::vector<text::ChatMessage>& conversation,
                        const SideBySideOptions& options, const std::optional<data::StyleTokens>& style);

// Each conversation must be non-empty and end with a user message (Error naming its index).
std::vector<SideBySide> side_by_side(infer::LoadedModel& base, infer::LoadedModel& tuned,
                                     const std::vector<std::vector<text::ChatMessage>>& conversations,
                                     const SideBySideOptions& options = {});

// One model with an adapter (Error without one): base replies with the adapter detached, tuned
// replies with it attached; the adapter is attached again on return, exception or not.
std::vector<SideBySide> side_by_side(infer::LoadedModel& tuned, const std::vector<std::vector<text::ChatMessage>>& conversations,
                                     const SideBySideOptions& options = {});

}  // namespace kindred::eval
