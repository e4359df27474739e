// infer/batch.h — several generations decoded together, each in a slot with its own KV cache and
// Continuation. Every step() is ONE Decoder::forward_batch over the next token of each decoding
// sequence plus, in the token budget left, the next chunks of the prompts still being prefilled
// (oldest first), so the weights are read once per step for all of them: decoding is bound by
// reading the weights, and n sequences per read cost little more than one.
//
// `kindred serve` (serve/engine.h) drives a Batch from its worker thread; run_batched (below)
// runs a list of requests through one, which is how the benchmarks answer many prompts.
//
// A request alone in a batch is computed as Session::generate computes it (prompt in chunks of
// batch_tokens = the decoder's own chunk size, then one token per forward), so it gives the same
// tokens for the same seed and settings. Beside others its rows share GEMMs with theirs, which may
// change logits in the last bits: results are reproducible for the same requests, slot count and
// thread count, not across slot counts.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/generator.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/lora_adapters.h"
#include "text/tokenizer.h"

namespace kindred::infer {

struct BatchRequest {
    std::vector<std::int32_t> prompt;
    GenerationOptions options;
    const model::LoraAdapters* adapter = nullptr;  // null = the base model
};

class Batch {
public:
    // `slots` sequences at once, `context` KV cache tokens each (0 = the model's context length),
    // at most `batch_tokens` tokens per forward. decoder and tokenizer must outlive the batch.
    // Throws Error for a bad size.
    Batch(model::Decoder& decoder, const text::Tokenizer& tokenizer, std::int64_t slots, std::int64_t context,
          std::int64_t batch_tokens = model::Decoder::default_max_batch);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    std::int64_t slots() const { return static_cast<std::int64_t>(slots_.size()); }
    std::int64_t context() const { return context_; }
    bool busy(std::int64_t slot) const;
    std::int64_t active() const;

    // Throws Error when `request` cannot run: an empty prompt, a token outside the vocabulary, a
    // prompt that leaves no room for a new token in a slot's context, bad sampling settings or
    // max_tokens < 1. Reads no mutable state, so another thread may call it while one steps.
    void check(const BatchRequest& request) const;

    // Starts `request` (check()ed first) in the free `slot`. With reuse_cached_prefix the slot
    // keeps the keys/values of the longest prefix its cache shares with the prompt (as a Session
    // does: a retry of the same prompt recomputes only its last token); without, it starts empty,
    // so the result never depends on what ran in the slot before.
    void start(std::int64_t slot, BatchRequest request, bool reuse_cached_prefix = false);

    // Ends the sequence in `slot` now (its client left) and returns what it had generated.
    GenerationResult stop(std::int64_t slot);

    struct Events {
        std::function<void(std::int64_t slot, std::string_view text)> on_text;  // newly showable text
        // The sequence in `slot` ended, the slot is free (on_end may start() it again). `error` is
        // non-empty when its forward or its sampling failed; `result` then holds what was done.
        std::function<void(std::int64_t slot, GenerationResult result, const std::string& error)> on_end;
    };
    // One forward over the active sequences; false when none was active (nothing ran).
    bool step(const Events& events);

private:
    struct Slot;
    Slot& slot_at(std::int64_t slot) const;
    void end(Slot& slot, std::int64_t index, const std::string& error, const Events& events);

    model::Decoder& decoder_;
    const text::Tokenizer& tokenizer_;
    std::int64_t context_;
    std::int64_t batch_tokens_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::vector<float> logits_;  // [slots x vocab]: one row per sequence whose logits a step asks for
    std::uint64_t started_ = 0;  // start counter: older prompts prefill first
};

// Runs requests through `batch` until none is left: next(slot) gives the request to start in the
// free `slot` (none = no more; slots are filled lowest first); when one ends, done(slot, result) may return a
// follow-up request to run at once in the same slot, its cached prefix reused (e.g. a retry of the
// same prompt at another temperature), or nothing to free the slot for next(). A forward or
// sampling failure is an Error after the batch has been emptied.
void run_batched(Batch& batch, const std::function<std::optional<BatchRequest>(std::int64_t slot)>& next,
                 const std::function<std::optional<BatchRequest>(std::int64_t slot, GenerationResult result)>& done);

}  // namespace kindred::infer
