#include "infer/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace kindred::infer {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
    switch (reason) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        case FinishReason::Context: return "context";
    }
    return "unknown";
}

Session::Session(model::Decoder& decoder, const text::Tokenizer& tokenizer, std::int64_t context)
    : decoder_(decoder),
      tokenizer_(tokenizer),
      context_(resolved_context(decoder.config(), context)),
      cache_(decoder.kv_cache(context_)),
      logits_(static_cast<std::size_t>(decoder.config().vocab_size)) {}

void Session::reset() {
    cache_.clear();
    cached_.clear();
}

std::int64_t resolved_context(const ModelConfig& config, std::int64_t context) {
    if (context == 0) return config.context_length;
    if (context < 2 || context > config.context_length)
        fail("generation: the context size {} is outside [2, the model's context length {}] (0 = the model's)", context,
             config.context_length);
    return context;
}

void check_prompt(std::span<const std::int32_t> prompt, std::int64_t vocab, std::int64_t context) {
    if (prompt.empty()) fail("generation: the prompt is empty");
    for (std::size_t i = 0; i < prompt.size(); ++i) {
        if (prompt[i] < 0 || prompt[i] >= vocab)
            fail("generation: prompt token {} (id {}) is outside the model's vocabulary [0, {})", i, prompt[i], vocab);
    }
    if (static_cast<std::int64_t>(prompt.size()) >= context)
        fail("generation: the prompt has {} tokens but the context holds {}; shorten it or raise the context size",
             prompt.size(), context);
}

std::size_t reusable_prefix(std::span<const std::int32_t> cached, std::span<const std::int32_t> prompt) {
    const auto mismatch = std::mismatch(cached.begin(), cached.end(), prompt.begin(), prompt.end());
    return std::min(static_cast<std::size_t>(mismatch.first - cached.begin()), prompt.size() - 1);
}

std::int64_t Session::prefill(std::span<const std::int32_t> prompt) {
    const std::size_t keep = reusable_prefix(cached_, prompt);
    cache_.truncate(static_cast<std::int64_t>(keep));
    cached_.resize(keep);
    // The decoder splits long inputs into its own batches.
    const auto rest = prompt.subspan(keep);
    decoder_.forward(rest, cache_, logits_);
    cached_.insert(cached_.end(), rest.begin(), rest.end());
    return static_cast<std::int64_t>(keep);
}

std::span<const float> Session::pooled_state(std::span<const std::int32_t> prompt) {
    if (prompt.empty()) fail("generation: the prompt is empty");
    if (static_cast<std::int64_t>(prompt.size()) > context_) {
        fail("generation: the prompt has {} tokens but the context holds {}", prompt.size(), context_);
    }
    prefill(prompt);
    return decoder_.last_hidden();
}

Continuation::Continuation(const text::Tokenizer& tokenizer, std::span<const std::int32_t> prompt,
                           const GenerationOptions& options, std::int64_t vocab)
    : stop_tokens_(options.stop_tokens),
      max_tokens_(options.max_tokens),
      sampler_(options.sampling, vocab),
      history_(prompt.begin(), prompt.end()),
      stream_(tokenizer, options.stop_strings) {
    if (options.max_tokens < 1) fail("generation: max tokens must be >= 1, got {}", options.max_tokens);
    if (options.harmony) harmony_.emplace(tokenizer);
    result_.prompt_tokens = static_cast<std::int64_t>(prompt.size());
}

void Continuation::show(const std::string& piece, const TextCallback& on_text) {
    if (piece.empty()) return;
    result_.text += piece;
    if (on_text) on_text(piece);
}

void Continuation::end(FinishReason reason, const TextCallback& on_text) {
    result_.finish_reason = reason;
    finished_ = true;
    show(stream_.finish(), on_text);
}

std::optional<std::int32_t> Continuation::step(std::span<const float> logits, bool context_full,
                                               const TextCallback& on_text) {
    if (finished_) fail("generation: step after the generation ended");
    const std::int32_t id = sampler_.sample(logits, history_);
    const auto kind = harmony_ ? harmony_->push(id) : HarmonyReply::Token::Show;
    if (kind == HarmonyReply::Token::End || std::find(stop_tokens_.begin(), stop_tokens_.end(), id) != stop_tokens_.end()) {
        end(FinishReason::Stop, on_text);
        return std::nullopt;
    }
    result_.tokens.push_back(id);
    history_.push_back(id);
    if (kind == HarmonyReply::Token::Show) show(stream_.push(id), on_text);
    if (stream_.stopped()) {
        end(FinishReason::Stop, on_text);
        return std::nullopt;
    }
    if (static_cast<std::int64_t>(result_.tokens.size()) >= max_tokens_) {
        end(FinishReason::Length, on_text);
        return std::nullopt;
    }
    if (context_full) {
        end(FinishReason::Context, on_text);
        return std::nullopt;
    }
    return id;
}

GenerationResult Session::generate(std::span<const std::int32_t> prompt, const GenerationOptions& options,
                                   const TextCallback& on_text) {
    const std::int64_t vocab = decoder_.config().vocab_size;
    check_prompt(prompt, vocab, context_);
    Continuation continuation(tokenizer_, prompt, options, vocab);

    const auto prefill_start = std::chrono::steady_clock::now();
    const std::int64_t cached = prefill(prompt);
    const double prefill_seconds = seconds_since(prefill_start);

    const auto decode_start = std::chrono::steady_clock::now();
    while (const auto id = continuation.step(logits_, static_cast<std::int64_t>(cached_.size()) >= context_, on_text)) {
        const std::int32_t fed[] = {*id};
        decoder_.forward(fed, cache_, logits_);
        cached_.push_back(*id);
    }
    GenerationResult result = std::move(continuation.result());
    result.cached_prompt_tokens = cached;
    result.prefill_seconds = prefill_seconds;
    result.decode_seconds = seconds_since(decode_start);
    return result;
}

}  // namespace kindred::infer
