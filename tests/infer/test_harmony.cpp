// gpt-oss replies through infer::Continuation (what chat, generate and the server run) with
// harmony on: scripted token sequences in the real gpt-oss tokenizer (../shared/tokenizers/gpt-oss),
// forced through one-hot logits, must show exactly the final channel's text and end where
// harmony says (infer/harmony.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "infer/generator.h"
#include "infer/harmony.h"
#include "text/tokenizer.h"
#include "test_paths.h"

namespace kindred::infer {
namespace {

const text::Tokenizer& tokenizer() {
    static const text::Tokenizer tok = text::Tokenizer::from_hf(
        kindred::testing::shared_path("tokenizers/gpt-oss/tokenizer.json"),
        kindred::testing::shared_path("tokenizers/gpt-oss/tokenizer_config.json"));
    return tok;
}

struct Generated {
    GenerationResult result;
    std::string streamed;
    std::size_t fed = 0;  // tokens the continuation asked to feed back to the model
};

// Generates the tokens of `script` (harmony markup parsed as control tokens) one by one, as if
// the model had put all its probability on each in turn; `stop_tokens` as LoadedModel gives them
// for gpt-oss (<|return|>, <|call|>, <|endoftext|>).
Generated generate(const std::string& script, bool harmony = true, std::int64_t max_tokens = 200) {
    const text::Tokenizer& tok = tokenizer();
    const auto ids = tok.encode(script, /*parse_special=*/true);
    GenerationOptions options;
    options.sampling.temperature = 0.0f;
    options.max_tokens = max_tokens;
    for (const char* stop : {"<|return|>", "<|call|>", "<|endoftext|>"}) options.stop_tokens.push_back(*tok.find_token(stop));
    options.harmony = harmony;
    const auto vocab = static_cast<std::int64_t>(tok.vocab_size());
    const std::vector<std::int32_t> prompt = tok.encode("<|start|>assistant", true);
    Continuation continuation(tok, prompt, options, vocab);
    Generated run;
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    for (const std::int32_t id : ids) {
        std::fill(logits.begin(), logits.end(), 0.0f);
        logits[static_cast<std::size_t>(id)] = 10.0f;
        const auto next = continuation.step(logits, false, [&](std::string_view piece) { run.streamed += piece; });
        if (!next) break;
        EXPECT_EQ(*next, id);
        ++run.fed;
    }
    run.result = continuation.result();
    return run;
}

TEST(Harmony, OnlyTheFinalChannelIsShownAndReturnEndsTheReply) {
    const Generated run = generate(
        "<|channel|>analysis<|message|>The user is sad. Secret reasoning.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>I'm sorry you feel that way.<|return|>"
        "<|start|>assistant<|channel|>final<|message|>never generated");
    EXPECT_EQ(run.result.text, "I'm sorry you feel that way.");
    EXPECT_EQ(run.streamed, run.result.text);
    EXPECT_EQ(run.result.finish_reason, FinishReason::Stop);
    // Every token up to <|return|> was generated and fed back (the analysis too: the model needs it).
    EXPECT_EQ(run.result.tokens.size(), run.fed);
    EXPECT_EQ(tokenizer().decode(run.result.tokens).find("<|return|>"), std::string::npos);
}

TEST(Harmony, EndAfterAnalysisGoesOnEndAfterFinalStops) {
    const Generated run = generate(
        "<|channel|>analysis<|message|>thinking<|end|><|start|>assistant<|channel|>final<|message|>Hello there."
        "<|end|><|start|>user<|message|>not ours");
    EXPECT_EQ(run.result.text, "Hello there.");
    EXPECT_EQ(run.result.finish_reason, FinishReason::Stop);
    EXPECT_EQ(tokenizer().decode(run.result.tokens).find("user"), std::string::npos);
}

TEST(Harmony, CommentaryAndToolCallsStayHiddenAndCallEndsTheReply) {
    const Generated run = generate(
        "<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{\"q\": 1}<|call|>more");
    EXPECT_EQ(run.result.text, "");
    EXPECT_EQ(run.result.finish_reason, FinishReason::Stop);
}

// A reply cut by the token budget inside the analysis shows nothing of it.
TEST(Harmony, BudgetEndingInsideTheAnalysisShowsNothing) {
    const Generated run = generate("<|channel|>analysis<|message|>a long chain of thought that goes on and on", true, 8);
    EXPECT_EQ(run.result.text, "");
    EXPECT_EQ(run.result.finish_reason, FinishReason::Length);
}

// A channel whose name only starts like "final" is not the final channel.
TEST(Harmony, OnlyTheChannelNamedFinalIsShown) {
    const Generated run = generate("<|channel|>finality<|message|>hidden<|end|><|start|>assistant<|channel|>final "
                             "<|message|>shown<|return|>");
    EXPECT_EQ(run.result.text, "shown");
}

// Without harmony (a raw prompt) every token is text: the contrast shows the tests above can fail.
TEST(Harmony, OffShowsEverything) {
    const Generated run = generate("<|channel|>analysis<|message|>thinking<|end|>", false);
    EXPECT_NE(run.result.text.find("thinking"), std::string::npos);
}

TEST(Harmony, ATokenizerWithoutHarmonyMarkupIsRefused) {
    const text::Tokenizer qwen = text::Tokenizer::from_hf(kindred::testing::shared_path("tokenizers/qwen3/tokenizer.json"));
    try {
        HarmonyReply reply(qwen);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("<|start|>"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace kindred::infer
