// Session and score_tokens on the default model: KV-cache reuse between calls gives the same
// tokens as a fresh session, each finish reason, stop strings cut the text, scoring windows.
#include <cmath>
#include <fstream>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "infer/score.h"
#include "test_paths.h"

namespace kindred::infer {
namespace {

class GeneratorTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { model_ = LoadedModel::open(kindred::testing::default_model_path()).release(); }
    static void TearDownTestSuite() {
        delete model_;
        model_ = nullptr;
    }

    static GenerationOptions greedy(std::int64_t max_tokens) {
        GenerationOptions options;
        options.sampling.temperature = 0.0f;
        options.max_tokens = max_tokens;
        options.stop_tokens = model_->stop_tokens();
        options.stop_strings = model_->stop_strings();
        return options;
    }

    static std::vector<std::int32_t> chat(const std::vector<text::ChatMessage>& messages) {
        return model_->encode_chat(messages);
    }

    static LoadedModel* model_;
};

LoadedModel* GeneratorTest::model_ = nullptr;

TEST_F(GeneratorTest, ReusedCacheGivesTheSameTokensAsAFreshSession) {
    const auto first_prompt = chat({{"user", "Hi! Can you help me plan my week?", {}}});
    Session session(model_->decoder(), model_->tokenizer(), 512);
    const GenerationResult first = session.generate(first_prompt, greedy(12));
    ASSERT_FALSE(first.tokens.empty());

    // The second turn re-sends the first: only the new part is computed.
    const auto second_prompt = chat({{"user", "Hi! Can you help me plan my week?", {}},
                                     {"assistant", first.text, {}},
                                     {"user", "Start with Monday.", {}}});
    const GenerationResult reused = session.generate(second_prompt, greedy(12));
    EXPECT_GE(reused.cached_prompt_tokens, static_cast<std::int64_t>(first_prompt.size()));

    Session fresh(model_->decoder(), model_->tokenizer(), 512);
    const GenerationResult recomputed = fresh.generate(second_prompt, greedy(12));
    EXPECT_EQ(recomputed.cached_prompt_tokens, 0);
    EXPECT_EQ(reused.tokens, recomputed.tokens);

    // The same prompt again: everything but the last token comes from the cache.
    const GenerationResult again = session.generate(second_prompt, greedy(12));
    EXPECT_EQ(again.cached_prompt_tokens, static_cast<std::int64_t>(second_prompt.size()) - 1);
    EXPECT_EQ(again.tokens, recomputed.tokens);
}

TEST_F(GeneratorTest, FinishReasons) {
    const auto prompt = chat({{"user", "Write a long story about a dragon.", {}}});
    Session session(model_->decoder(), model_->tokenizer(), 0);
    const GenerationResult limited = session.generate(prompt, greedy(5));
    EXPECT_EQ(limited.finish_reason, FinishReason::Length);
    EXPECT_EQ(limited.tokens.size(), 5u);

    // A context with room for the prompt and 3 fed tokens: the 4th sampled token cannot be fed.
    Session small(model_->decoder(), model_->tokenizer(), static_cast<std::int64_t>(prompt.size()) + 3);
    const GenerationResult full = small.generate(prompt, greedy(100));
    EXPECT_EQ(full.finish_reason, FinishReason::Context);
    EXPECT_EQ(full.tokens.size(), 4u);
    EXPECT_EQ(std::vector<std::int32_t>(limited.tokens.begin(), limited.tokens.begin() + 4), full.tokens);

    Session tiny(model_->decoder(), model_->tokenizer(), static_cast<std::int64_t>(prompt.size()));
    EXPECT_THROW(tiny.generate(prompt, greedy(1)), Error);

    // "What is the capital of France?" ends with EOS after "...Paris." (the golden's path).
    const GenerationResult stopped = session.generate(chat({{"user", "What is the capital of France?", {}}}), greedy(32));
    EXPECT_EQ(stopped.finish_reason, FinishReason::Stop);
    EXPECT_EQ(stopped.text, "The capital of France is Paris.");
}

TEST_F(GeneratorTest, StopStringCutsTextAndStreamAgreesWithResult) {
    const auto prompt = chat({{"user", "What is the capital of France?", {}}});
    GenerationOptions options = greedy(32);
    options.stop_strings.push_back(" Paris");
    Session session(model_->decoder(), model_->tokenizer(), 0);
    std::string streamed;
    const GenerationResult result = session.generate(prompt, options, [&](std::string_view piece) { streamed += piece; });
    EXPECT_EQ(result.finish_reason, FinishReason::Stop);
    EXPECT_EQ(result.text, "The capital of France is");
    EXPECT_EQ(streamed, result.text);
}

TEST_F(GeneratorTest, ScoreMatchesTransformersAndWindowsCoverEveryToken) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/inference/smollm2_perplexity.json"));
    const auto golden = nlohmann::json::parse(in);
    const auto ids = golden["ids"].get<std::vector<std::int32_t>>();
    const ScoreResult whole = score_tokens(model_->decoder(), ids);
    EXPECT_EQ(whole.windows, 1);
    EXPECT_EQ(whole.predicted, static_cast<std::int64_t>(ids.size()) - 1);
    // The decoder matches transformers' fp32 logits to ~1e-4; averaged over 68 tokens the mean
    // NLL agrees far better than 1e-3 (perplexity 0.1%).
    EXPECT_NEAR(whole.mean_nll, golden["mean_nll"].get<double>(), 1e-3);

    // A window as long as the text is the single-window case, bit for bit.
    const ScoreResult exact = score_tokens(model_->decoder(), ids, static_cast<std::int64_t>(ids.size()));
    EXPECT_EQ(exact.windows, 1);
    EXPECT_EQ(exact.mean_nll, whole.mean_nll);

    ASSERT_EQ(ids.size(), 69u);
    const ScoreResult windowed = score_tokens(model_->decoder(), ids, 16);
    EXPECT_EQ(windowed.predicted, whole.predicted);
    // Windows of 16 with stride 8 over 69 tokens start at 0, 8, ..., 56 (the one at 56 reaches the end).
    EXPECT_EQ(windowed.windows, 8);
    EXPECT_TRUE(std::isfinite(windowed.mean_nll));
    EXPECT_NE(windowed.mean_nll, whole.mean_nll);  // later tokens saw less context

    EXPECT_THROW(score_tokens(model_->decoder(), std::vector<std::int32_t>{1}), Error);
    EXPECT_THROW(score_tokens(model_->decoder(), std::vector<std::int32_t>{1, 999999}), Error);
}

TEST(LoadedModel, UnknownArchitectureIsAnErrorNamingIt) {
    gguf::Writer writer;
    writer.metadata().set("general.architecture", {std::string("mamba")});
    const std::string path = ::testing::TempDir() + "/kindred-unknown-arch.gguf";
    writer.write(path);
    try {
        LoadedModel::open(path);
        FAIL() << "expected an Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("mamba"), std::string::npos) << error.what();
    }
}

}  // namespace
}  // namespace kindred::infer
