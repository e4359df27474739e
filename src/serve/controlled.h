// serve/controlled.h — chat requests with {"kindred": {"controller": true}}: the decoding
// controller (infer/controller.h, docs/controller.md) run on a thread of its own, each of its
// decodes (summary, reflection, draft, safety re-decode, repairs) a job on the engine, so they are
// batched with everyone else's and run on the request's adapter. The reply reaches the client
// through a Channel like any job's, in one piece once the controller is done (the checker and the
// safety rules may replace a draft, so nothing can be streamed before). The Channel and the usage
// see the reply text only; the reflection, summary, draft and prompts stay in the TurnLog, of
// which a response carries the public form (infer::to_json(log, false)).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "infer/controller.h"
#include "infer/loaded_model.h"
#include "model/lora_adapters.h"
#include "serve/engine.h"

namespace kindred::serve {

struct ControlledJob {
    std::vector<text::ChatMessage> messages;  // the visible conversation, ending with a user message
    std::unique_ptr<infer::Controller> controller;  // built for the request (options, style, rules)
    std::uint64_t seed = 0;
    const model::LoraAdapters* adapter = nullptr;  // null = the base model
    std::int64_t prompt_tokens = 0;  // the visible conversation's prompt: what usage reports
};

struct ControlledRun {
    std::shared_ptr<Channel> channel;  // the reply text, then the end; cancel() stops the run
    // Written before the channel finishes; read it once channel->finished().
    std::shared_ptr<infer::TurnLog> log;
};

// The threads of the running controlled requests. Engine and model must outlive it.
class ControlledRuns {
public:
    ControlledRuns(Engine& engine, const infer::LoadedModel& model) : engine_(engine), model_(model) {}
    ~ControlledRuns();
    ControlledRuns(const ControlledRuns&) = delete;
    ControlledRuns& operator=(const ControlledRuns&) = delete;

    ControlledRun start(ControlledJob request);
    // Waits for every run; call once the engine has drained (its jobs then end at once).
    void join();

private:
    struct Thread {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    Engine& engine_;
    const infer::LoadedModel& model_;
    std::mutex mutex_;
    std::vector<Thread> threads_;
};

}  // namespace kindred::serve
