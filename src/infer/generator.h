// infer/generator.h — the generation loop: prefill a prompt in one batched forward, then decode
// one token at a time with a Sampler until a stop token, a stop string, the token budget or the
// context ends it, streaming UTF-8-safe text that never contains a stop string (TextStream).
// A Session keeps its KV cache between calls and reuses the longest cached prefix of the next
// prompt, so a chat re-sends the whole conversation but only the new turn is computed.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampler.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "text/tokenizer.h"

namespace kindred::infer {

enum class FinishReason {
    Stop,     // a stop token or stop string
    Length,   // max_tokens generated
    Context,  // the KV cache (context window) is full
};
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "context"

struct GenerationOptions {
    SamplingParams sampling;
    std::int64_t max_tokens = 512;
    std::vector<std::int32_t> stop_tokens;  // ids that end generation (not part of the output)
    std::vector<std::string> stop_strings;  // texts that end generation (not part of the output)
};

struct GenerationResult {
    std::string text;                   // what was streamed, stop string excluded
    std::vector<std::int32_t> tokens;   // generated ids, the stop token excluded
    FinishReason finish_reason = FinishReason::Length;
    std::int64_t prompt_tokens = 0;
    std::int64_t cached_prompt_tokens = 0;  // prompt prefix whose KV was reused, not recomputed
    double prefill_seconds = 0.0;
    double decode_seconds = 0.0;            // after prefill: sampling, decoding and streaming
};

// Called with each newly showable piece of text.
using TextCallback = std::function<void(std::string_view)>;

class Session {
public:
    // `context` tokens of KV cache (at most the model's context length; 0 = the model's).
    // decoder and tokenizer must outlive the session.
    Session(model::Decoder& decoder, const text::Tokenizer& tokenizer, std::int64_t context = 0);

    // Generates a continuation of `prompt`. A prompt that does not leave room for one new token
    // in the context is an Error.
    GenerationResult generate(std::span<const std::int32_t> prompt, const GenerationOptions& options,
                              const TextCallback& on_text = {});

    // Brings the cache to hold `prompt` (reusing its cached prefix) and returns the final hidden
    // state of its last token: for a chat prompt ending in the generation prompt, the pooled
    // position the heads read (model/heads.h). Valid until the next call on this session; a
    // generate() of the same prompt afterwards recomputes only its last token.
    std::span<const float> pooled_state(std::span<const std::int32_t> prompt);

    void reset();  // forget the cached tokens
    std::int64_t context() const { return context_; }

private:
    // Brings the cache to hold exactly `prompt`, leaves the last position's logits in logits_ and
    // returns how many prompt tokens were already cached.
    std::int64_t prefill(std::span<const std::int32_t> prompt);

    model::Decoder& decoder_;
    const text::Tokenizer& tokenizer_;
    std::int64_t context_;
    model::KvCache cache_;
    std::vector<std::int32_t> cached_;  // the tokens whose keys and values the cache holds
    std::vector<float> logits_;
};

}  // namespace kindred::infer
