// infer::Batch and run_batched on the default model: a request alone gives Session::generate's
// tokens, a follow-up in the same slot reuses the cached prompt as a Session does, several slots
// answer every request once and reproducibly, and bad requests or slots are Errors.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "infer/batch.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "test_paths.h"

namespace kindred::infer {
namespace {

class BatchTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { model_ = LoadedModel::open(kindred::testing::default_model_path()).release(); }
    static void TearDownTestSuite() {
        delete model_;
        model_ = nullptr;
    }

    // Sampled (not greedy), so that the seed matters and a retry draws other tokens.
    static BatchRequest request(const std::string& user, std::uint64_t seed, std::int64_t max_tokens = 10) {
        BatchRequest out;
        const std::vector<text::ChatMessage> messages{{"user", user, {}}};
        out.prompt = model_->encode_chat(messages);
        out.options.sampling.temperature = 0.9f;
        out.options.sampling.seed = seed;
        out.options.max_tokens = max_tokens;
        out.options.stop_tokens = model_->stop_tokens();
        out.options.stop_strings = model_->stop_strings();
        return out;
    }

    static LoadedModel* model_;
};

LoadedModel* BatchTest::model_ = nullptr;

TEST_F(BatchTest, AloneAndRetriedGivesSessionsTokens) {
    const BatchRequest first = request("Tell me about your day.", 11);
    BatchRequest retry = first;
    retry.options.sampling.seed = 12;

    Session session(model_->decoder(), model_->tokenizer(), 256);
    const GenerationResult expected_first = session.generate(first.prompt, first.options);
    const GenerationResult expected_retry = session.generate(retry.prompt, retry.options);
    ASSERT_EQ(expected_retry.cached_prompt_tokens, static_cast<std::int64_t>(first.prompt.size()) - 1);
    ASSERT_NE(expected_first.tokens, expected_retry.tokens);  // the seed matters

    Batch batch(model_->decoder(), model_->tokenizer(), 1, 256);
    std::vector<GenerationResult> results;
    bool started = false;
    run_batched(
        batch,
        [&](std::int64_t slot) -> std::optional<BatchRequest> {
            EXPECT_EQ(slot, 0);
            if (started) return std::nullopt;
            started = true;
            return first;
        },
        [&](std::int64_t slot, GenerationResult result) -> std::optional<BatchRequest> {
            EXPECT_EQ(slot, 0);
            results.push_back(std::move(result));
            if (results.size() == 1) return retry;  // the same prompt again, in the same slot
            return std::nullopt;
        });
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].tokens, expected_first.tokens);
    EXPECT_EQ(results[0].text, expected_first.text);
    EXPECT_EQ(results[0].cached_prompt_tokens, 0);
    EXPECT_EQ(results[1].tokens, expected_retry.tokens);
    EXPECT_EQ(results[1].cached_prompt_tokens, static_cast<std::int64_t>(first.prompt.size()) - 1);
}

TEST_F(BatchTest, SeveralSlotsAnswerEveryRequestOnceAndReproducibly) {
    const std::vector<std::string> users{"Hi!", "I lost my keys again.", "What should I cook tonight?",
                                         "My exam went badly.", "Tell me a joke."};
    const auto run = [&](std::int64_t slots) {
        Batch batch(model_->decoder(), model_->tokenizer(), slots, 256);
        std::size_t next = 0;
        std::map<std::int64_t, std::size_t> running;  // slot -> request index
        std::vector<std::optional<GenerationResult>> results(users.size());
        run_batched(
            batch,
            [&](std::int64_t slot) -> std::optional<BatchRequest> {
                if (next == users.size()) return std::nullopt;
                EXPECT_FALSE(batch.busy(slot));
                EXPECT_FALSE(running.contains(slot));
                running[slot] = next;
                const std::size_t index = next++;
                return request(users[index], 100 + index);
            },
            [&](std::int64_t slot, GenerationResult result) -> std::optional<BatchRequest> {
                const std::size_t index = running.at(slot);
                running.erase(slot);
                EXPECT_FALSE(results[index].has_value()) << "request " << index << " answered twice";
                results[index] = std::move(result);
                return std::nullopt;
            });
        std::vector<std::vector<std::int32_t>> tokens;
        for (const auto& result : results) {
            EXPECT_TRUE(result.has_value());
            tokens.push_back(result ? result->tokens : std::vector<std::int32_t>{});
        }
        return tokens;
    };
    const auto three = run(3);
    EXPECT_EQ(run(3), three);
    for (const auto& tokens : three) EXPECT_FALSE(tokens.empty());
    // One slot computes each alone: Session's tokens.
    const auto one = run(1);
    for (std::size_t i = 0; i < users.size(); ++i) {
        const BatchRequest alone = request(users[i], 100 + i);
        Session session(model_->decoder(), model_->tokenizer(), 256);
        EXPECT_EQ(one[i], session.generate(alone.prompt, alone.options).tokens) << "request " << i;
    }
}

TEST_F(BatchTest, BadRequestsAndSlotsAreErrors) {
    EXPECT_THROW(Batch(model_->decoder(), model_->tokenizer(), 0, 256), Error);
    EXPECT_THROW(Batch(model_->decoder(), model_->tokenizer(), 4, 256, 2), Error);
    EXPECT_THROW(Batch(model_->decoder(), model_->tokenizer(), 1, 1), Error);
    Batch batch(model_->decoder(), model_->tokenizer(), 2, 64);
    BatchRequest bad = request("Hi", 1);
    bad.prompt.clear();
    EXPECT_THROW(batch.check(bad), Error);
    bad.prompt.assign(64, 1);  // no room for a new token
    EXPECT_THROW(batch.check(bad), Error);
    bad.prompt = {static_cast<std::int32_t>(model_->decoder().config().vocab_size)};
    EXPECT_THROW(batch.check(bad), Error);
    bad = request("Hi", 1, 0);
    EXPECT_THROW(batch.start(0, bad), Error);
    EXPECT_FALSE(batch.busy(0));
    EXPECT_THROW(batch.start(2, request("Hi", 1)), Error);
    batch.start(0, request("Hi", 1));
    EXPECT_THROW(batch.start(0, request("Hi", 1)), Error);  // busy
    EXPECT_EQ(batch.active(), 1);
    EXPECT_THROW(batch.stop(1), Error);                      // free
    batch.stop(0);
    EXPECT_EQ(batch.active(), 0);
    EXPECT_FALSE(batch.step({}));  // nothing to run
}

}  // namespace
}  // namespace kindred::infer
