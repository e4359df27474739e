// infer/batch.cpp — slots and the step of several generations decoded together (see batch.h).
#include "infer/batch.h"

#include <algorithm>

#include "core/error.h"

namespace kindred::infer {

struct Batch::Slot {
    Slot(const model::Decoder& decoder, std::int64_t context) : cache(decoder.kv_cache(context)) {}

    model::KvCache cache;
    std::vector<std::int32_t> cached;  // the tokens whose keys and values the cache holds
    BatchRequest request;
    std::optional<Continuation> continuation;  // engaged while a sequence runs in the slot
    std::int64_t prefilled = 0;                // prompt tokens in the cache
    std::optional<std::int32_t> next;          // decoding: the sampled token the next forward feeds
    std::uint64_t order = 0;                   // start order: older prompts prefill first
};

namespace {

std::int64_t at_least(std::int64_t value, std::int64_t low, const char* what) {
    if (value < low) fail("batched generation: {} must be >= {}, got {}", what, low, value);
    return value;
}

}  // namespace

Batch::Batch(model::Decoder& decoder, const text::Tokenizer& tokenizer, std::int64_t slots, std::int64_t context,
             std::int64_t batch_tokens)
    : decoder_(decoder),
      tokenizer_(tokenizer),
      context_(resolved_context(decoder.config(), context)),
      batch_tokens_(at_least(batch_tokens, 1, "the batch size in tokens")) {
    at_least(slots, 1, "the number of parallel sequences");
    if (slots > batch_tokens_)
        fail("batched generation: {} parallel sequences do not fit a batch of {} tokens; raise the batch size", slots,
             batch_tokens_);
    for (std::int64_t i = 0; i < slots; ++i) slots_.push_back(std::make_unique<Slot>(decoder_, context_));
    logits_.resize(static_cast<std::size_t>(slots * decoder_.config().vocab_size));
}

Batch::~Batch() = default;

Batch::Slot& Batch::slot_at(std::int64_t slot) const {
    if (slot < 0 || slot >= slots()) fail("batched generation: slot {} is outside [0, {})", slot, slots());
    return *slots_[static_cast<std::size_t>(slot)];
}

bool Batch::busy(std::int64_t slot) const { return slot_at(slot).continuation.has_value(); }

std::int64_t Batch::active() const {
    return std::count_if(slots_.begin(), slots_.end(), [](const auto& slot) { return slot->continuation.has_value(); });
}

void Batch::check(const BatchRequest& request) const {
    const std::int64_t vocab = decoder_.config().vocab_size;
    check_prompt(request.prompt, vocab, context_);
    request.options.sampling.validate(vocab);
    if (request.options.max_tokens < 1) fail("generation: max tokens must be >= 1, got {}", request.options.max_tokens);
}

void Batch::start(std::int64_t index, BatchRequest request, bool reuse_cached_prefix) {
    Slot& slot = slot_at(index);
    if (slot.continuation) fail("batched generation: slot {} is busy", index);
    check(request);
    const std::size_t keep = reuse_cached_prefix ? reusable_prefix(slot.cached, request.prompt) : 0;
    slot.cache.truncate(static_cast<std::int64_t>(keep));
    slot.cached.resize(keep);
    slot.request = std::move(request);
    slot.continuation.emplace(tokenizer_, slot.request.prompt, slot.request.options, decoder_.config().vocab_size);
    slot.continuation->result().cached_prompt_tokens = static_cast<std::int64_t>(keep);
    slot.prefilled = static_cast<std::int64_t>(keep);
    slot.next.reset();
    slot.order = started_++;
}

GenerationResult Batch::stop(std::int64_t index) {
    Slot& slot = slot_at(index);
    if (!slot.continuation) fail("batched generation: slot {} is free", index);
    GenerationResult result = std::move(slot.continuation->result());
    slot.continuation.reset();
    slot.next.reset();
    return result;
}

void Batch::end(Slot& slot, std::int64_t index, const std::string& error, const Events& events) {
    GenerationResult result = std::move(slot.continuation->result());
    slot.continuation.reset();
    slot.next.reset();
    if (events.on_end) events.on_end(index, std::move(result), error);
}

bool Batch::step(const Events& events) {
    const auto vocab = static_cast<std::size_t>(decoder_.config().vocab_size);
    std::vector<std::int64_t> decoding, prefilling;
    for (std::int64_t i = 0; i < slots(); ++i) {
        const Slot& slot = *slots_[static_cast<std::size_t>(i)];
        if (!slot.continuation) continue;
        (slot.next ? decoding : prefilling).push_back(i);
    }
    std::sort(prefilling.begin(), prefilling.end(),
              [&](std::int64_t a, std::int64_t b) { return slot_at(a).order < slot_at(b).order; });

    // One forward: every decoding sequence's next token, then prompt chunks in the budget left.
    // Logits come back in step order for the steps that ask for them (a prompt's last chunk, every
    // decode), one row of logits_ each.
    using Step = model::Decoder::SequenceStep;
    using LogitRows = model::Decoder::LogitRows;
    std::vector<Step> steps;
    std::vector<std::int64_t> owners;
    for (const std::int64_t i : decoding) {
        Slot& slot = slot_at(i);
        steps.push_back({std::span<const std::int32_t>(&*slot.next, 1), &slot.cache, slot.request.adapter, LogitRows::Last});
        owners.push_back(i);
    }
    std::int64_t budget = batch_tokens_ - static_cast<std::int64_t>(decoding.size());
    for (const std::int64_t i : prefilling) {
        if (budget <= 0) break;
        Slot& slot = slot_at(i);
        const auto left = static_cast<std::int64_t>(slot.request.prompt.size()) - slot.prefilled;
        const std::int64_t n = std::min(budget, left);
        budget -= n;
        const auto tokens = std::span<const std::int32_t>(slot.request.prompt)
                                .subspan(static_cast<std::size_t>(slot.prefilled), static_cast<std::size_t>(n));
        steps.push_back({tokens, &slot.cache, slot.request.adapter, n == left ? LogitRows::Last : LogitRows::None});
        owners.push_back(i);
    }
    if (steps.empty()) return false;
    const auto logit_rows = static_cast<std::size_t>(
        std::count_if(steps.begin(), steps.end(), [](const Step& step) { return step.logits == LogitRows::Last; }));

    try {
        decoder_.forward_batch(steps, std::span<float>(logits_).first(logit_rows * vocab));
    } catch (const Error& error) {
        // The caches of the sequences in this step are in an unknown state: forget what they held.
        for (const std::int64_t i : owners) {
            Slot& slot = slot_at(i);
            slot.cache.clear();
            slot.cached.clear();
            end(slot, i, error.what(), events);
        }
        return true;
    }

    std::size_t row = 0;
    for (std::size_t s = 0; s < steps.size(); ++s) {
        const std::int64_t i = owners[s];
        Slot& slot = slot_at(i);
        slot.cached.insert(slot.cached.end(), steps[s].tokens.begin(), steps[s].tokens.end());
        if (slot.next) {
            slot.next.reset();
        } else {
            slot.prefilled += static_cast<std::int64_t>(steps[s].tokens.size());
        }
        if (steps[s].logits == LogitRows::None) continue;
        const auto logits = std::span<const float>(logits_).subspan(row++ * vocab, vocab);
        const bool context_full = slot.cache.size() >= context_;
        try {
            slot.next = slot.continuation->step(logits, context_full, [&](std::string_view text) {
                if (events.on_text) events.on_text(i, text);
            });
        } catch (const Error& error) {
            end(slot, i, error.what(), events);
            continue;
        }
        if (!slot.next) end(slot, i, {}, events);
    }
    return true;
}

void run_batched(Batch& batch, const std::function<std::optional<BatchRequest>(std::int64_t slot)>& next,
                 const std::function<std::optional<BatchRequest>(std::int64_t slot, GenerationResult result)>& done) {
    bool more = true;
    std::string failure;
    const auto fill = [&] {
        for (std::int64_t slot = 0; more && slot < batch.slots(); ++slot) {
            if (batch.busy(slot)) continue;
            if (std::optional<BatchRequest> request = next(slot)) {
                batch.start(slot, std::move(*request));
            } else {
                more = false;
            }
        }
    };
    Batch::Events events;
    events.on_end = [&](std::int64_t slot, GenerationResult result, const std::string& error) {
        if (!error.empty()) {
            if (failure.empty()) failure = error;
            more = false;  // finish what runs, start nothing new
            return;
        }
        if (!failure.empty()) return;
        if (std::optional<BatchRequest> follow_up = done(slot, std::move(result)))
            batch.start(slot, std::move(*follow_up), /*reuse_cached_prefix=*/true);
    };
    fill();
    while (batch.step(events)) fill();
    if (!failure.empty()) fail("{}", failure);
}

}  // namespace kindred::infer
