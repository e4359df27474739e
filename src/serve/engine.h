// serve/engine.h — the model side of `kindred serve`: continuous batching over a fixed set of
// slots (infer/batch.h), an admission queue in front of them.
//
// One worker thread owns the model. Every step it (1) admits queued jobs into free slots, (2) runs
// one Batch::step: the next token of every decoding sequence plus, in the token budget left, the
// next chunk of the prompts still being prefilled (oldest first), as one forward over all of them,
// each sequence with its own cache, positions and adapter, and (3) hands each sequence's new text
// to the request's Channel. A sequence that ends, or whose client left (Channel::cancel), frees
// its slot at once and a queued job takes it the next step. The worker never waits on a client:
// text goes into the channel's buffer and the HTTP thread writes it at the client's pace, so a
// slow or vanished client holds nobody up.
//
// A job alone in the engine is computed exactly as `kindred generate` computes it, so it gives
// the same tokens for the same seed and settings; a slot starts every job from an empty cache, so
// what ran in it before never changes a reply.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "infer/batch.h"
#include "infer/generator.h"
#include "model/decoder.h"
#include "text/tokenizer.h"

namespace kindred::serve {

using Job = infer::BatchRequest;

// A job's results as they arrive: text pieces, then the end. The engine writes, one HTTP thread
// reads; thread-safe.
class Channel {
public:
    // Waits up to `timeout` for new text or the end, and moves the text that arrived into `text`
    // (appending). Returns true when text arrived or the job has ended.
    bool wait(std::string& text, std::chrono::milliseconds timeout);
    bool finished() const;
    // After finished(): how generation ended. error() is non-empty when the engine gave up on the
    // job (shutdown, a failed forward) instead of finishing it; result() then holds what was done.
    const infer::GenerationResult& result() const;
    const std::string& error() const;

    // The client left: the engine drops the job at its next step.
    void cancel();
    bool cancelled() const;

private:
    friend class Engine;
    friend class ControlledRuns;  // a controlled run writes its reply as one piece (serve/controlled.h)
    void append(std::string_view text);
    void finish(infer::GenerationResult result, std::string error = {});

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::string text_;  // arrived, not yet taken by wait()
    bool finished_ = false;
    bool cancelled_ = false;
    infer::GenerationResult result_;
    std::string error_;
};

struct EngineOptions {
    std::int64_t slots = 4;           // sequences decoded together
    std::int64_t context = 0;         // KV cache tokens per slot (0 = the model's context length)
    std::int64_t queue = 16;          // jobs that may wait for a slot; beyond it submit refuses (503)
    std::int64_t batch_tokens = model::Decoder::default_max_batch;  // most tokens in one forward
};

class Engine {
public:
    // decoder and tokenizer must outlive the engine. Throws Error for a bad option.
    Engine(model::Decoder& decoder, const text::Tokenizer& tokenizer, EngineOptions options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues a job. ApiError 503 when the queue is full or the engine is draining; Error when the
    // prompt leaves no room for a token in a slot's context (callers check that first, as a 400).
    std::shared_ptr<Channel> submit(Job job);

    // Refuses new jobs, lets admitted and queued ones run for up to `grace`, then ends the rest
    // with an error and stops the worker. Idempotent.
    void drain(std::chrono::milliseconds grace);
    // During drain(): stop waiting for running jobs now.
    void hurry();

    std::int64_t context() const { return options_.context; }
    std::int64_t slots() const { return options_.slots; }
    struct Load {
        std::int64_t active = 0;
        std::int64_t queued = 0;
    };
    Load load() const;

private:
    void run();
    void admit(std::unique_lock<std::mutex>& lock);
    void step();
    void finish(std::int64_t slot, infer::GenerationResult result, const std::string& error);

    EngineOptions options_;
    infer::Batch batch_;
    std::vector<std::shared_ptr<Channel>> channels_;  // per slot: the running job's, null while free

    mutable std::mutex mutex_;
    std::condition_variable work_;  // a job arrived, or draining began
    std::condition_variable idle_;  // a job ended
    struct Pending {
        Job job;
        std::shared_ptr<Channel> channel;
    };
    std::deque<Pending> queue_;
    std::int64_t active_ = 0;
    bool draining_ = false;
    bool hurry_ = false;
    bool stopping_ = false;
    std::thread worker_;
};

}  // namespace kindred::serve
