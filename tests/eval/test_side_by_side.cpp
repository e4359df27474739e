// Side-by-side replies against transformers' greedy continuations of the default model, without
// (tests/goldens/inference) and with PEFT's test adapter (tests/goldens/adapter_logits).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/side_by_side.h"
#include "infer/loaded_model.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

using testing::source_path;

const std::string kAdapter = source_path("tests/goldens/adapter_logits/adapter");

nlohmann::json golden_chat(const std::string& file, const std::string& prompt) {
    std::ifstream in(source_path(file));
    const nlohmann::json golden = nlohmann::json::parse(in);
    for (const auto& chat : golden["chats"]) {
        if (chat["prompt"] == prompt) return chat;
    }
    ADD_FAILURE() << file << " has no chat '" << prompt << "'";
    return {};
}

TEST(SideBySide, BaseAndTunedRepliesMatchTransformers) {
    const std::string prompt = "What is the capital of France?";
    // The base golden ends with <|im_end|> inside 32 tokens; the adapter golden is 16 tokens
    // without an end, so 16 tokens reproduce both.
    const std::string base_text = golden_chat("tests/goldens/inference/smollm2_greedy.json", prompt)["text"];
    const std::string tuned_text = golden_chat("tests/goldens/adapter_logits/logits.json", prompt)["text"];
    ASSERT_EQ(base_text, "The capital of France is Paris.<|im_end|>");
    const std::vector<std::vector<text::ChatMessage>> conversations = {{{"user", prompt, {}}}};
    SideBySideOptions options;
    options.max_tokens = 16;
    options.sampling = infer::SamplingParams{};
    options.sampling.temperature = 0.0f;  // greedy without penalties: transformers' generate(do_sample=False)

    const auto base = infer::LoadedModel::open(testing::default_model_path());
    const auto tuned = infer::LoadedModel::open(testing::default_model_path(), kAdapter);
    const auto two_models = side_by_side(*base, *tuned, conversations, options);
    ASSERT_EQ(two_models.size(), 1u);
    EXPECT_EQ(two_models[0].base_reply, "The capital of France is Paris.");  // the stop token is not part of a reply
    EXPECT_EQ(two_models[0].tuned_reply, tuned_text);
    EXPECT_EQ(two_models[0].conversation.size(), 1u);

    // One model with its adapter toggled gives the same pair and keeps its adapter.
    const auto one_model = side_by_side(*tuned, conversations, options);
    EXPECT_EQ(one_model[0].base_reply, two_models[0].base_reply);
    EXPECT_EQ(one_model[0].tuned_reply, two_models[0].tuned_reply);
    EXPECT_NE(tuned->decoder().adapter(), nullptr);

    EXPECT_THROW(side_by_side(*base, conversations, options), Error);  // no adapter to toggle
    const std::vector<std::vector<text::ChatMessage>> bad = {{{"user", "hi", {}}, {"assistant", "hello", {}}}};
    try {
        side_by_side(*base, *tuned, bad, options);
        FAIL() << "a conversation ending with the assistant was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("conversation 0"), std::string::npos) << error.what();
    }
}

}  // namespace
}  // namespace kindred::eval
