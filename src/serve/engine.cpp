// serve/engine.cpp — slots, the admission queue and the step loop (see engine.h).
#include "serve/engine.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "serve/protocol.h"

namespace kindred::serve {

// ---- Channel ----

bool Channel::wait(std::string& text, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const bool ready = changed_.wait_for(lock, timeout, [this] { return !text_.empty() || finished_; });
    text += text_;
    text_.clear();
    return ready;
}

bool Channel::finished() const {
    std::lock_guard lock(mutex_);
    return finished_;
}

const infer::GenerationResult& Channel::result() const {
    std::lock_guard lock(mutex_);
    return result_;
}

const std::string& Channel::error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

void Channel::cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
}

bool Channel::cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
}

void Channel::append(std::string_view text) {
    {
        std::lock_guard lock(mutex_);
        text_ += text;
    }
    changed_.notify_all();
}

void Channel::finish(infer::GenerationResult result, std::string error) {
    {
        std::lock_guard lock(mutex_);
        result_ = std::move(result);
        error_ = std::move(error);
        finished_ = true;
    }
    changed_.notify_all();
}

// ---- Engine ----

struct Engine::Slot {
    Slot(const ModelConfig& config, std::int64_t context) : cache(config, context) {}

    model::KvCache cache;
    std::shared_ptr<Channel> channel;   // null while the slot is free
    Job job;
    std::optional<infer::Continuation> continuation;
    std::int64_t prefilled = 0;         // prompt tokens already in the cache
    std::optional<std::int32_t> next;   // decoding: the sampled token the next forward feeds
    std::uint64_t order = 0;            // admission order: older prompts prefill first
};

namespace {

std::int64_t checked(std::int64_t value, std::int64_t low, const char* what) {
    if (value < low) fail("serve: {} must be >= {}, got {}", what, low, value);
    return value;
}

EngineOptions checked_options(EngineOptions options, const ModelConfig& config) {
    checked(options.slots, 1, "the number of parallel sequences");
    checked(options.queue, 0, "the queue size");
    checked(options.batch_tokens, 1, "the batch size in tokens");
    if (options.slots > options.batch_tokens)
        fail("serve: {} parallel sequences do not fit a batch of {} tokens; raise the batch size", options.slots,
             options.batch_tokens);
    checked(options.context, 0, "the context size");
    if (options.context == 0) options.context = config.context_length;
    if (options.context < 2 || options.context > config.context_length)
        fail("serve: the context size {} is outside [2, the model's context length {}]", options.context,
             config.context_length);
    return options;
}

}  // namespace

Engine::Engine(model::Decoder& decoder, const text::Tokenizer& tokenizer, EngineOptions options)
    : decoder_(decoder), tokenizer_(tokenizer), options_(checked_options(options, decoder.config())) {
    const ModelConfig& config = decoder_.config();
    for (std::int64_t i = 0; i < options_.slots; ++i)
        slots_.push_back(std::make_unique<Slot>(config, options_.context));
    logits_.resize(static_cast<std::size_t>(options_.slots * config.vocab_size));
    worker_ = std::thread([this] { run(); });
}

Engine::~Engine() { drain(std::chrono::milliseconds(0)); }

std::shared_ptr<Channel> Engine::submit(Job job) {
    const auto size = static_cast<std::int64_t>(job.prompt.size());
    if (size == 0) fail("serve: the prompt is empty");
    if (size >= options_.context)
        fail("the prompt has {} tokens but a sequence's context holds {}; shorten it", size, options_.context);
    // Checked here, on the caller's thread, so that admission (on the worker) cannot fail.
    job.options.sampling.validate(decoder_.config().vocab_size);
    if (job.options.max_tokens < 1) fail("serve: max tokens must be >= 1, got {}", job.options.max_tokens);
    auto channel = std::make_shared<Channel>();
    {
        std::lock_guard lock(mutex_);
        if (draining_) throw ApiError(503, "server_error", "shutting_down", "", "the server is shutting down");
        if (active_ + static_cast<std::int64_t>(queue_.size()) >= options_.slots + options_.queue)
            throw ApiError(503, "server_error", "queue_full",
                           "", fmt::format("the server is busy ({} requests running, {} waiting); retry later", active_,
                                           queue_.size()));
        queue_.push_back({std::move(job), channel});
    }
    work_.notify_one();
    return channel;
}

Engine::Load Engine::load() const {
    std::lock_guard lock(mutex_);
    return {active_, static_cast<std::int64_t>(queue_.size())};
}

void Engine::drain(std::chrono::milliseconds grace) {
    {
        std::unique_lock lock(mutex_);
        draining_ = true;
        idle_.wait_for(lock, grace, [this] { return hurry_ || (active_ == 0 && queue_.empty()); });
        stopping_ = true;
    }
    work_.notify_all();
    if (worker_.joinable()) worker_.join();
}

void Engine::hurry() {
    {
        std::lock_guard lock(mutex_);
        hurry_ = true;
    }
    idle_.notify_all();
}

void Engine::run() {
    while (true) {
        {
            std::unique_lock lock(mutex_);
            work_.wait(lock, [this] { return stopping_ || !queue_.empty() || active_ > 0; });
            if (stopping_) break;
            admit(lock);
        }
        step();
    }
    for (auto& slot : slots_)
        if (slot->channel) release(*slot, "the server is shutting down");
    std::lock_guard lock(mutex_);
    for (Pending& pending : queue_) pending.channel->finish({}, "the server is shutting down");
    queue_.clear();
}

void Engine::admit(std::unique_lock<std::mutex>&) {
    for (auto& slot : slots_) {
        while (!slot->channel && !queue_.empty()) {
            Pending pending = std::move(queue_.front());
            queue_.pop_front();
            if (pending.channel->cancelled()) {
                pending.channel->finish({}, "cancelled");
                continue;
            }
            Slot& s = *slot;
            s.cache.clear();
            s.job = std::move(pending.job);
            s.channel = std::move(pending.channel);
            s.continuation.emplace(tokenizer_, s.job.prompt, s.job.options, decoder_.config().vocab_size);
            s.prefilled = 0;
            s.next.reset();
            s.order = admitted_++;
            ++active_;
        }
    }
}

void Engine::release(Slot& slot, std::string error) {
    slot.channel->finish(slot.continuation ? std::move(slot.continuation->result()) : infer::GenerationResult{},
                         std::move(error));
    slot.channel.reset();
    slot.continuation.reset();
    slot.next.reset();
    {
        std::lock_guard lock(mutex_);
        --active_;
    }
    idle_.notify_all();
}

void Engine::step() {
    const auto vocab = static_cast<std::size_t>(decoder_.config().vocab_size);
    std::vector<Slot*> decoding, prefilling;
    for (auto& slot : slots_) {
        if (!slot->channel) continue;
        if (slot->channel->cancelled()) {
            release(*slot, "cancelled");
        } else if (slot->next) {
            decoding.push_back(slot.get());
        } else {
            prefilling.push_back(slot.get());
        }
    }
    std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->order < b->order; });

    // One forward: every decoding sequence's next token, then prompt chunks in the budget left.
    // Logits come back in step order for the steps that ask for them (a prompt's last chunk, every
    // decode), one row of logits_ each.
    using Step = model::Decoder::SequenceStep;
    using LogitRows = model::Decoder::LogitRows;
    std::vector<Step> steps;
    std::vector<Slot*> owners;
    for (Slot* slot : decoding) {
        steps.push_back({std::span<const std::int32_t>(&*slot->next, 1), &slot->cache, slot->job.adapter, LogitRows::Last});
        owners.push_back(slot);
    }
    std::int64_t budget = options_.batch_tokens - static_cast<std::int64_t>(decoding.size());
    for (Slot* slot : prefilling) {
        if (budget <= 0) break;
        const auto left = static_cast<std::int64_t>(slot->job.prompt.size()) - slot->prefilled;
        const std::int64_t n = std::min(budget, left);
        budget -= n;
        const auto tokens = std::span<const std::int32_t>(slot->job.prompt).subspan(static_cast<std::size_t>(slot->prefilled),
                                                                                    static_cast<std::size_t>(n));
        steps.push_back({tokens, &slot->cache, slot->job.adapter, n == left ? LogitRows::Last : LogitRows::None});
        owners.push_back(slot);
    }
    if (steps.empty()) return;
    const auto logit_rows = static_cast<std::size_t>(
        std::count_if(steps.begin(), steps.end(), [](const Step& step) { return step.logits == LogitRows::Last; }));

    try {
        decoder_.forward_batch(steps, std::span<float>(logits_).first(logit_rows * vocab));
    } catch (const Error& error) {
        fmt::print(stderr, "kindred serve: a forward failed: {}\n", error.what());
        for (Slot* slot : owners) release(*slot, error.what());
        return;
    }

    std::size_t row = 0;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        Slot& slot = *owners[i];
        if (slot.next) {
            slot.next.reset();
        } else {
            slot.prefilled += static_cast<std::int64_t>(steps[i].tokens.size());
        }
        if (steps[i].logits == LogitRows::None) continue;
        const auto logits = std::span<const float>(logits_).subspan(row++ * vocab, vocab);
        Channel& channel = *slot.channel;
        const bool context_full = slot.cache.size() >= options_.context;
        try {
            slot.next = slot.continuation->step(logits, context_full,
                                                [&](std::string_view text) { channel.append(text); });
        } catch (const Error& error) {
            release(slot, error.what());
            continue;
        }
        if (!slot.next) release(slot);
    }
}

}  // namespace kindred::serve
