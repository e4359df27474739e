// End-to-end checks of `kindred generate`, `chat` and `score` on the default model: greedy tokens
// equal transformers' greedy generation and perplexity matches transformers' (goldens written by
// tools/goldens/inference.py); bad input exits 1 with a clear message, never a signal.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_kindred.h"
#include "core/paths.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

// SmolLM2's <|im_end|>, its EOS.
constexpr int kEos = 2;
constexpr const char* kEosText = "<|im_end|>";

nlohmann::json read_golden(const std::string& name) {
    std::ifstream in(source_path("tests/goldens/inference/" + name));
    return nlohmann::json::parse(in);
}

// Single-quotes a string for the shell.
std::string shell_quoted(const std::string& text) {
    std::string out = "'";
    for (const char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

void expect_clean_failure(const std::string& arguments, const std::string& needle) {
    const CommandResult result = run_kindred(arguments, /*merge_stderr=*/true);
    EXPECT_EQ(result.signal, 0) << arguments;
    EXPECT_EQ(result.exit_code, 1) << arguments << ": " << result.output;
    EXPECT_NE(result.output.find("kindred: error:"), std::string::npos) << arguments << ": " << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << arguments << ": expected '" << needle << "' in: " << result.output;
}

TEST(GenerateCli, GreedyTokensMatchTransformers) {
    const auto golden = read_golden("smollm2_greedy.json");
    const int new_tokens = golden["new_tokens"].get<int>();
    for (const auto& chat : golden["chats"]) {
        const std::string prompt = chat["prompt"].get<std::string>();
        // transformers' fp32 tokens: the exact products, pinned whatever the default.
        const CommandResult result = run_kindred("generate --model default --products fp32 --prompt " + shell_quoted(prompt) +
                                                 " --temperature 0 --json --max-tokens " + std::to_string(new_tokens));
        ASSERT_EQ(result.exit_code, 0) << prompt << ": " << result.output;
        const auto report = nlohmann::json::parse(result.output);
        // The chat template and tokenizer must give transformers' prompt ids exactly.
        EXPECT_EQ(report["prompt_tokens"].get<std::size_t>(), chat["prompt_ids"].size()) << prompt;
        // transformers stops after emitting EOS and keeps it (and its text) in the output; kindred
        // reports the ids and text before the stop token.
        auto expected_ids = chat["generated_ids"].get<std::vector<int>>();
        std::string expected_text = chat["text"].get<std::string>();
        const bool stopped = !expected_ids.empty() && expected_ids.back() == kEos;
        if (stopped) {
            expected_ids.pop_back();
            ASSERT_TRUE(expected_text.ends_with(kEosText)) << expected_text;
            expected_text.resize(expected_text.size() - std::string_view(kEosText).size());
        }
        EXPECT_EQ(report["tokens"], nlohmann::json(expected_ids)) << prompt << "\n  kindred: " << report["text"]
                                                                << "\n  transformers: " << chat["text"];
        EXPECT_EQ(report["finish_reason"], stopped ? "stop" : "length") << prompt;
        EXPECT_EQ(report["text"], expected_text) << prompt;
    }
}

// Gemma 3 270M through the CLI: the raw prompt with BOS (SentencePiece tokenizer), greedy tokens as
// transformers' (tests/goldens/inference/gemma3_270m.json); the chat template applies and the reply
// streams. Skipped when scripts/fetch-gemma3-270m has not run.
TEST(GenerateCli, Gemma3GreedyTokensMatchTransformers) {
    if (!std::filesystem::exists(kindred_home() + "/models/" + kGemma3_270mFile))
        GTEST_SKIP() << "Gemma 3 270M not fetched (scripts/fetch-gemma3-270m)";
    const auto golden = read_golden("gemma3_270m.json");
    const auto& greedy = golden["greedy"][0];
    const auto expected = greedy["generated_ids"].get<std::vector<int>>();
    const CommandResult raw = run_kindred("generate --model gemma3-270m --products fp32 --raw --temperature 0 --json --prompt " +
                                          shell_quoted(greedy["prompt"].get<std::string>()) + " --max-tokens " +
                                          std::to_string(expected.size()));
    ASSERT_EQ(raw.exit_code, 0) << raw.output;
    const auto report = nlohmann::json::parse(raw.output);
    EXPECT_EQ(report["prompt_tokens"].get<std::size_t>(), greedy["prompt_ids"].size());
    EXPECT_EQ(report["tokens"], nlohmann::json(expected));
    const CommandResult chat = run_kindred("generate --model gemma3-270m --temperature 0 --max-tokens 4 --prompt Hi");
    EXPECT_EQ(chat.exit_code, 0) << chat.output;
    EXPECT_FALSE(chat.output.empty());
}

TEST(GenerateCli, SameSeedSameTextAndStreamingMatchesJson) {
    const std::string common = "generate --model default --prompt 'Tell me something kind.' --max-tokens 24 --seed 7 --temperature 0.9";
    const CommandResult first = run_kindred(common + " --json");
    const CommandResult second = run_kindred(common + " --json");
    ASSERT_EQ(first.exit_code, 0) << first.output;
    ASSERT_EQ(second.exit_code, 0) << second.output;
    const auto a = nlohmann::json::parse(first.output);
    const auto b = nlohmann::json::parse(second.output);
    EXPECT_EQ(a["tokens"], b["tokens"]);
    EXPECT_EQ(a["seed"], 7);
    const CommandResult streamed = run_kindred(common);
    ASSERT_EQ(streamed.exit_code, 0);
    EXPECT_EQ(streamed.output, a["text"].get<std::string>() + "\n");
}

TEST(ScoreCli, PerplexityMatchesTransformers) {
    const auto golden = read_golden("smollm2_perplexity.json");
    const CommandResult result = run_kindred("score --model default --products fp32 --text " +
                                             shell_quoted(golden["text"].get<std::string>()) + " --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    EXPECT_EQ(report["tokens"].get<std::size_t>(), golden["ids"].size());
    const double expected = golden["perplexity"].get<double>();
    // 0.5% (the issue's bound): the decoder agrees with transformers' fp32 logits to ~1e-4, which
    // moves the mean NLL by far less than 0.005.
    EXPECT_NEAR(report["perplexity"].get<double>(), expected, 0.005 * expected);
}

TEST(ScoreCli, WindowedScoringCoversEveryToken) {
    const auto golden = read_golden("smollm2_perplexity.json");
    const CommandResult result =
        run_kindred("score --model default --window 32 --text " + shell_quoted(golden["text"].get<std::string>()) + " --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    const auto n = golden["ids"].size();
    EXPECT_EQ(report["predicted"].get<std::size_t>(), n - 1);
    EXPECT_GT(report["windows"].get<int>(), 1);
    // Less context per token can only cost a little here; it must stay a sane perplexity.
    EXPECT_GT(report["perplexity"].get<double>(), 1.0);
}

TEST(ChatCli, PipedConversationPrintsOnlyReplies) {
    const std::string input = ::testing::TempDir() + "/kindred-chat-input.txt";
    {
        std::ofstream out(input);
        out << "Hello!\n/system You are terse.\nHi again.\n/quit\nnot read\n";
    }
    const CommandResult result = run_kindred("chat --model default --temperature 0 --max-tokens 8 < " + shell_quoted(input));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    // Two replies, one line each at most 8 tokens; no prompt characters on stdout.
    std::size_t lines = 0;
    for (const char c : result.output) lines += c == '\n';
    EXPECT_GE(lines, 2u) << result.output;
    EXPECT_EQ(result.output.find("> "), std::string::npos) << result.output;
}

TEST(GenerateCli, BadInputIsAClearError) {
    expect_clean_failure("generate --model /nonexistent/model.gguf --prompt hi", "/nonexistent/model.gguf");
    expect_clean_failure("generate --model default --prompt hi --temperature -1", "temperature");
    expect_clean_failure("generate --model default --prompt hi --top-p 0", "top-p");
    expect_clean_failure("generate --model default --prompt hi --top-p 1.5", "top-p");
    expect_clean_failure("generate --model default --prompt hi --min-p 2", "min-p");
    expect_clean_failure("generate --model default --prompt hi --top-k -3", "top-k");
    expect_clean_failure("generate --model default --prompt hi --repeat-penalty 0", "repeat penalty");
    expect_clean_failure("generate --model default --prompt hi --max-tokens 0", "max-tokens");
    expect_clean_failure("generate --model default --prompt hi --seed abc", "--seed");
    expect_clean_failure("generate --model default --prompt hi --adapter /nonexistent/some-adapter", "/nonexistent/some-adapter");
    expect_clean_failure("score --model default --text 'a b c' --adapter /nonexistent/x", "/nonexistent/x");
    // A prompt longer than the model's 8192-token context ("word " is one token each).
    std::string long_prompt;
    for (int i = 0; i < 9000; ++i) long_prompt += "word ";
    expect_clean_failure("generate --model default --raw --prompt " + shell_quoted(long_prompt), "context");
    expect_clean_failure("score --model default --text a", "at least 2");
}

TEST(GenerateCli, CorruptModelIsAClearError) {
    const std::string path = ::testing::TempDir() + "/kindred-corrupt.gguf";
    {
        std::ofstream out(path, std::ios::binary);
        out << "GGUF\x03\x00\x00\x00garbage";
    }
    expect_clean_failure("generate --model " + shell_quoted(path) + " --prompt hi", path);
    expect_clean_failure("score --model " + shell_quoted(path) + " --text 'hello there'", path);
}

TEST(GenerateCli, MessagesFileAndBadMessages) {
    const std::string good = ::testing::TempDir() + "/kindred-messages.json";
    {
        std::ofstream out(good);
        out << R"([{"role": "user", "content": "What is the capital of France?"}])";
    }
    const auto golden = read_golden("smollm2_greedy.json");
    const CommandResult result = run_kindred("generate --model default --products fp32 --messages " + shell_quoted(good) +
                                             " --temperature 0 --max-tokens 4 --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    const auto& expected = golden["chats"][0]["generated_ids"];
    EXPECT_EQ(report["tokens"], nlohmann::json(std::vector<int>(expected.begin(), expected.begin() + 4)));

    const std::string bad = ::testing::TempDir() + "/kindred-bad-messages.json";
    {
        std::ofstream out(bad);
        out << R"([{"role": "user"}])";
    }
    expect_clean_failure("generate --model default --messages " + shell_quoted(bad), "message 0");
}

}  // namespace
}  // namespace kindred::testing
