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

namespace {

EngineOptions checked_options(EngineOptions options) {
    if (options.queue < 0) fail("serve: the queue size must be >= 0, got {}", options.queue);
    return options;
}

}  // namespace

Engine::Engine(model::Decoder& decoder, const text::Tokenizer& tokenizer, EngineOptions options)
    : options_(checked_options(options)),
      batch_(decoder, tokenizer, options_.slots, options_.context, options_.batch_tokens),
      channels_(static_cast<std::size_t>(options_.slots)) {
    options_.context = batch_.context();
    worker_ = std::thread([this] { run(); });
}

Engine::~Engine() { drain(std::chrono::milliseconds(0)); }

std::shared_ptr<Channel> Engine::submit(Job job) {
    // Checked here, on the caller's thread, so that admission (on the worker) cannot fail.
    batch_.check(job);
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
    for (std::int64_t slot = 0; slot < batch_.slots(); ++slot)
        if (batch_.busy(slot)) finish(slot, batch_.stop(slot), "the server is shutting down");
    std::lock_guard lock(mutex_);
    for (Pending& pending : queue_) pending.channel->finish({}, "the server is shutting down");
    queue_.clear();
}

void Engine::admit(std::unique_lock<std::mutex>&) {
    for (std::int64_t slot = 0; slot < batch_.slots(); ++slot) {
        while (!batch_.busy(slot) && !queue_.empty()) {
            Pending pending = std::move(queue_.front());
            queue_.pop_front();
            if (pending.channel->cancelled()) {
                pending.channel->finish({}, "cancelled");
                continue;
            }
            batch_.start(slot, std::move(pending.job));
            channels_[static_cast<std::size_t>(slot)] = std::move(pending.channel);
            ++active_;
        }
    }
}

void Engine::finish(std::int64_t slot, infer::GenerationResult result, const std::string& error) {
    std::shared_ptr<Channel> channel = std::move(channels_[static_cast<std::size_t>(slot)]);
    channel->finish(std::move(result), error);
    {
        std::lock_guard lock(mutex_);
        --active_;
    }
    idle_.notify_all();
}

void Engine::step() {
    for (std::int64_t slot = 0; slot < batch_.slots(); ++slot)
        if (batch_.busy(slot) && channels_[static_cast<std::size_t>(slot)]->cancelled())
            finish(slot, batch_.stop(slot), "cancelled");
    infer::Batch::Events events;
    events.on_text = [this](std::int64_t slot, std::string_view text) { channels_[static_cast<std::size_t>(slot)]->append(text); };
    events.on_end = [this](std::int64_t slot, infer::GenerationResult result, const std::string& error) {
        if (!error.empty()) fmt::print(stderr, "kindred serve: a generation failed: {}\n", error);
        finish(slot, std::move(result), error);
    };
    batch_.step(events);
}

}  // namespace kindred::serve
