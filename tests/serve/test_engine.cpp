// serve/engine on the default model: a job alone gives what `kindred generate` gives; jobs decoded
// together give what each gives alone; adapters chosen per job give PEFT's greedy continuations
// while base jobs run beside them; cancelled jobs free their slot; the queue bound and draining.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "serve/engine.h"
#include "serve/protocol.h"
#include "serve_test_util.h"

namespace kindred::serve {
namespace {

using namespace std::chrono_literals;
using testing::chat_job;
using testing::default_model;
using testing::run_alone;

// Waits for the end and returns the text streamed through the channel.
std::string collect(Channel& channel) {
    std::string text;
    while (!channel.finished()) channel.wait(text, 100ms);
    channel.wait(text, 0ms);
    return text;
}

Engine make_engine(std::int64_t slots, std::int64_t queue = 8) {
    EngineOptions options;
    options.slots = slots;
    options.queue = queue;
    options.context = 512;
    return Engine(default_model().decoder(), default_model().tokenizer(), options);
}

TEST(Engine, AloneGivesWhatGenerateGives) {
    Engine engine = make_engine(2);
    for (const float temperature : {0.0f, 0.8f}) {
        const Job job = chat_job("Tell me about your favourite season.", 20, temperature, 1234);
        const infer::GenerationResult expected = run_alone(job);
        const auto channel = engine.submit(job);
        const std::string streamed = collect(*channel);
        EXPECT_TRUE(channel->error().empty()) << channel->error();
        EXPECT_EQ(channel->result().tokens, expected.tokens) << "temperature " << temperature;
        EXPECT_EQ(channel->result().text, expected.text);
        EXPECT_EQ(streamed, expected.text);
        EXPECT_EQ(channel->result().finish_reason, expected.finish_reason);
        EXPECT_EQ(channel->result().prompt_tokens, static_cast<std::int64_t>(job.prompt.size()));
    }
}

// Five jobs at once on four slots: four decode together, the fifth waits for the first free slot.
// Each gives exactly the tokens it gives alone.
TEST(Engine, ConcurrentJobsGiveWhatEachGivesAlone) {
    const std::vector<Job> jobs = {
        chat_job("Hi! How are you today?", 16, 0.0f, 1),
        chat_job("I lost my keys and I am late for work.", 24, 0.8f, 7),
        chat_job("Write one sentence about the sea.", 12, 0.7f, 99),
        chat_job("What is two plus two?", 20, 0.0f, 3),
        chat_job("My best friend moved away. I feel lonely.", 18, 1.0f, 5),
    };
    std::vector<infer::GenerationResult> alone;
    for (const Job& job : jobs) alone.push_back(run_alone(job));

    Engine engine = make_engine(4);
    std::vector<std::shared_ptr<Channel>> channels;
    for (const Job& job : jobs) channels.push_back(engine.submit(job));
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        const std::string streamed = collect(*channels[i]);
        EXPECT_TRUE(channels[i]->error().empty()) << channels[i]->error();
        EXPECT_EQ(channels[i]->result().tokens, alone[i].tokens) << "job " << i;
        EXPECT_EQ(streamed, alone[i].text) << "job " << i;
    }
}

// The golden adapter's jobs give PEFT's greedy tokens (tools/goldens/adapter_logits.py, top-2 logit
// gap >= 0.18, far above fp32 summation differences) while base jobs decode in the same batches
// and give the base model's tokens.
TEST(Engine, AdapterPerJob) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/adapter_logits/logits.json"));
    ASSERT_TRUE(in) << "missing golden";
    const nlohmann::json golden = nlohmann::json::parse(in);
    infer::LoadedModel& model = default_model();
    const testing::Fp32Products exact;  // PEFT's tokens come from transformers in fp32
    const auto adapter = infer::read_lora_adapter(testing::golden_adapter_dir(), model.decoder(), model.path());

    std::vector<Job> tuned_jobs, base_jobs;
    std::vector<infer::GenerationResult> base_alone;
    for (const nlohmann::json& chat : golden["chats"]) {
        Job job = chat_job(chat["prompt"].get<std::string>(), golden["new_tokens"].get<std::int64_t>(), 0.0f, 0,
                           adapter.get());
        ASSERT_EQ(job.prompt, chat["prompt_ids"].get<std::vector<std::int32_t>>());
        job.options.stop_tokens.clear();  // PEFT generated exactly new_tokens tokens
        Job plain = job;
        plain.adapter = nullptr;
        base_alone.push_back(run_alone(plain));  // before the engine exists: one user of the decoder at a time
        tuned_jobs.push_back(job);
        base_jobs.push_back(plain);
    }
    Engine engine = make_engine(4);
    std::vector<std::shared_ptr<Channel>> tuned, base;
    for (std::size_t i = 0; i < tuned_jobs.size(); ++i) {
        tuned.push_back(engine.submit(tuned_jobs[i]));
        base.push_back(engine.submit(base_jobs[i]));
    }
    for (std::size_t i = 0; i < tuned.size(); ++i) {
        collect(*tuned[i]);
        collect(*base[i]);
        EXPECT_EQ(tuned[i]->result().tokens, golden["chats"][i]["generated_ids"].get<std::vector<std::int32_t>>()) << i;
        EXPECT_EQ(base[i]->result().tokens, base_alone[i].tokens) << i;
        EXPECT_NE(base[i]->result().tokens, tuned[i]->result().tokens) << i;
    }
}

TEST(Engine, CancelledJobFreesItsSlot) {
    Engine engine = make_engine(1, 1);
    const auto endless = engine.submit(chat_job("Count to one thousand.", 400, 0.0f, 0));
    const auto waiting = engine.submit(chat_job("Say hi.", 4, 0.0f, 0));
    std::string text;
    while (text.empty()) endless->wait(text, 100ms);  // it is decoding
    endless->cancel();
    collect(*waiting);
    EXPECT_TRUE(waiting->error().empty());
    EXPECT_FALSE(waiting->result().tokens.empty());
    collect(*endless);
    EXPECT_EQ(endless->error(), "cancelled");
    EXPECT_LT(endless->result().tokens.size(), 400u);
}

TEST(Engine, FullQueueAndDrainRefuse) {
    Engine engine = make_engine(1, 1);
    const auto running = engine.submit(chat_job("Count to one thousand.", 400, 0.0f, 0));
    const auto queued = engine.submit(chat_job("Say hi.", 4, 0.0f, 0));
    try {
        engine.submit(chat_job("Say hi.", 4, 0.0f, 0));
        ADD_FAILURE() << "a third job fit one slot and one queue place";
    } catch (const ApiError& error) {
        EXPECT_EQ(error.status, 503);
        EXPECT_EQ(error.code, "queue_full");
    }
    engine.drain(0ms);  // no grace: both end with an error at once
    EXPECT_TRUE(running->finished());
    EXPECT_EQ(running->error(), "the server is shutting down");
    EXPECT_EQ(queued->error(), "the server is shutting down");
    try {
        engine.submit(chat_job("Say hi.", 4, 0.0f, 0));
        ADD_FAILURE() << "a drained engine took a job";
    } catch (const ApiError& error) {
        EXPECT_EQ(error.code, "shutting_down");
    }
}

TEST(Engine, DrainLetsRunningJobsFinish) {
    Engine engine = make_engine(2);
    const auto running = engine.submit(chat_job("Say hi.", 6, 0.0f, 0));
    engine.drain(60s);
    EXPECT_TRUE(running->finished());
    EXPECT_TRUE(running->error().empty());
    EXPECT_FALSE(running->result().tokens.empty());
}

TEST(Engine, RefusesPromptsOverTheContextAndBadOptions) {
    Engine engine = make_engine(1);
    Job job = chat_job("Hi", 4, 0.0f, 0);
    job.prompt.assign(512, job.prompt.front());
    EXPECT_THROW(engine.submit(job), Error);
    job.prompt.clear();
    EXPECT_THROW(engine.submit(job), Error);
    EngineOptions options;
    options.slots = 0;
    EXPECT_THROW(Engine(default_model().decoder(), default_model().tokenizer(), options), Error);
    options.slots = 4;
    options.batch_tokens = 2;
    EXPECT_THROW(Engine(default_model().decoder(), default_model().tokenizer(), options), Error);
    options.batch_tokens = 512;
    options.context = 1 << 30;
    EXPECT_THROW(Engine(default_model().decoder(), default_model().tokenizer(), options), Error);
}

}  // namespace
}  // namespace kindred::serve
