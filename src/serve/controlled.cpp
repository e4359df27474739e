// serve/controlled.cpp — the controller's decodes as engine jobs (see controlled.h).
#include "serve/controlled.h"

#include <chrono>

#include "core/error.h"

namespace kindred::serve {
namespace {

using namespace std::chrono_literals;

// How often a decode in progress looks whether the client is still there.
constexpr auto kCancelPoll = 100ms;

// One decode of the controller's as a job on the engine; a client gone cancels it.
infer::GenerationResult decode_on_engine(Engine& engine, const model::LoraAdapters* adapter, Channel& client,
                                         std::span<const std::int32_t> prompt, const infer::GenerationOptions& options) {
    if (client.cancelled()) fail("cancelled");
    Job job;
    job.prompt.assign(prompt.begin(), prompt.end());
    job.options = options;
    job.adapter = adapter;
    const std::shared_ptr<Channel> decode = engine.submit(std::move(job));
    std::string ignored;
    while (!decode->finished()) {
        decode->wait(ignored, kCancelPoll);
        if (client.cancelled()) decode->cancel();
    }
    if (!decode->error().empty()) fail("{}", decode->error());
    return decode->result();
}

}  // namespace

ControlledRuns::~ControlledRuns() { join(); }

ControlledRun ControlledRuns::start(ControlledJob request) {
    ControlledRun run{std::make_shared<Channel>(), std::make_shared<infer::TurnLog>()};
    auto done = std::make_shared<std::atomic<bool>>(false);
    auto shared_job = std::make_shared<ControlledJob>(std::move(request));
    std::thread thread([this, run, done, shared_job] {
        ControlledJob& job = *shared_job;
        Channel& channel = *run.channel;
        try {
            const infer::DecodeFn decode = [&](std::span<const std::int32_t> prompt, const infer::GenerationOptions& options) {
                return decode_on_engine(engine_, job.adapter, channel, prompt, options);
            };
            infer::ControlledReply reply = job.controller->reply(decode, job.messages, job.seed);
            *run.log = std::move(reply.log);
            infer::GenerationResult result;
            result.text = reply.text;
            result.tokens = model_.tokenizer().encode(reply.text, /*parse_special=*/false);
            result.prompt_tokens = job.prompt_tokens;
            result.finish_reason = reply.finish_reason;
            channel.append(reply.text);
            channel.finish(std::move(result));
        } catch (const std::exception& error) {
            channel.finish({}, error.what());
        }
        *done = true;
    });
    std::lock_guard lock(mutex_);
    // Reap the runs that have ended, so a long-lived server keeps no finished threads.
    std::erase_if(threads_, [](Thread& t) {
        if (!*t.done) return false;
        t.thread.join();
        return true;
    });
    threads_.push_back({std::move(thread), std::move(done)});
    return run;
}

void ControlledRuns::join() {
    std::lock_guard lock(mutex_);
    for (Thread& t : threads_)
        if (t.thread.joinable()) t.thread.join();
    threads_.clear();
}

}  // namespace kindred::serve
