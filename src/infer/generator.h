// infer/generator.h — the generation loop: prefill a prompt in one batched forward, then decode
// one token at a time with a Sampler until a stop token, a stop string, the token budget or the
// context ends it, streaming UTF-8-safe text that never contains a stop string (TextStream).
// A Session keeps its KV cache between calls and reuses the longest cached prefix of the next
// prompt, so a chat re-sends the whole conversation but only the new turn is computed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/harmony.h"
#include "infer/sampler.h"
#include "infer/text_stream.h"
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
    // gpt-oss's harmony replies (infer/harmony.h): show only the final channel's text and end at
    // the <|end|> that closes it (LoadedModel::harmony() says when).
    bool harmony = false;
};

struct GenerationResult {
    std::string text;                   // what was streamed, stop string excluded (harmony: the final answer)
    std::vector<std::int32_t> tokens;   // generated ids (hidden harmony ones too), the stop token excluded
    FinishReason finish_reason = FinishReason::Length;
    std::int64_t prompt_tokens = 0;
    std::int64_t cached_prompt_tokens = 0;  // prompt prefix whose KV was reused, not recomputed
    double prefill_seconds = 0.0;
    double decode_seconds = 0.0;            // after prefill: sampling, decoding and streaming
};

// The context a generation runs in: `context` tokens, or the model's own length for 0; between 2
// (a prompt token and a generated one) and the model's length. Session and infer::Batch share it.
std::int64_t resolved_context(const ModelConfig& config, std::int64_t context);

// Errors naming the token or the lengths unless `prompt` is non-empty, its ids lie in [0, vocab)
// and it leaves `context` room for at least one generated token.
void check_prompt(std::span<const std::int32_t> prompt, std::int64_t vocab, std::int64_t context);

// How many leading tokens of `prompt` a cache holding `cached` can keep: their longest common
// prefix, but never the prompt's last token, whose logits the first sample needs. Session and
// infer::Batch both reuse caches this way.
std::size_t reusable_prefix(std::span<const std::int32_t> cached, std::span<const std::int32_t> prompt);

// Called with each newly showable piece of text.
using TextCallback = std::function<void(std::string_view)>;

// One sequence's generation after its prompt: samples from the logits of each step, streams the
// text, and says when to stop, in exactly the order Session::generate has always used (stop token,
// stop string, token budget, full context). Session drives one with one forward per token; the
// server (serve/engine.h) drives many with one batched forward per step, so a request gives the
// same tokens either way.
class Continuation {
public:
    // The tokenizer must outlive the continuation. Validates options.sampling against `vocab`.
    Continuation(const text::Tokenizer& tokenizer, std::span<const std::int32_t> prompt, const GenerationOptions& options,
                 std::int64_t vocab);

    // Samples the next token from `logits` (the last fed token's). Returns the token to feed next,
    // or nothing when generation has ended (finish_reason() tells why; the held-back text has then
    // been shown). `context_full`: the KV cache cannot take another token.
    std::optional<std::int32_t> step(std::span<const float> logits, bool context_full, const TextCallback& on_text = {});

    bool finished() const { return finished_; }
    const GenerationResult& result() const { return result_; }
    GenerationResult& result() { return result_; }

private:
    void show(const std::string& piece, const TextCallback& on_text);
    void end(FinishReason reason, const TextCallback& on_text);

    std::vector<std::int32_t> stop_tokens_;
    std::int64_t max_tokens_;
    Sampler sampler_;
    std::vector<std::int32_t> history_;  // prompt and generated tokens, for the penalties
    TextStream stream_;
    std::optional<HarmonyReply> harmony_;
    GenerationResult result_;
    bool finished_ = false;
};

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
