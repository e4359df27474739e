// Tests for train/chat_dataset.h with the default model's (SmolLM2) tokenizer and chat template:
// line parsing errors, assistant-only targets, target turns and style prefixes of prepared
// examples, and the drop-too-long policy.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_paths.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/chat_dataset.h"

namespace kindred::train {
namespace {

struct Model {
    text::Tokenizer tokenizer;
    text::ChatTemplate chat;
    std::size_t context_length;
};

const Model& model() {
    static const Model m = [] {
        const auto file = gguf::File::open(testing::default_model_path());
        auto tokenizer = text::Tokenizer::from_gguf(file.metadata());
        auto chat = text::ChatTemplate::detect(tokenizer.chat_template(), "SmolLM2-135M-Instruct");
        const auto context = static_cast<std::size_t>(file.metadata().uint("llama.context_length"));
        return Model{std::move(tokenizer), chat, context};
    }();
    return m;
}

std::string error_of(std::string_view line) {
    ChatExample example;
    try {
        parse_chat_line(line, "chats.jsonl", 7, example);
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

// The text of the tokens that are some position's target, in order.
std::string trained_text(const TokenizedExample& example) {
    std::vector<std::int32_t> ids;
    for (std::size_t t = 0; t < example.targets.size(); ++t) {
        if (example.targets[t] == kIgnoreTarget) continue;
        EXPECT_EQ(example.targets[t], example.tokens[t + 1]) << "target " << t << " is not the next token";
        ids.push_back(example.targets[t]);
    }
    return model().tokenizer.decode(ids);
}

TokenizedExample tokenize_line(std::string_view line) {
    ChatExample example;
    EXPECT_TRUE(parse_chat_line(line, "chats.jsonl", 1, example));
    return tokenize_example(example, model().tokenizer, model().chat, "chats.jsonl");
}

std::string write_temp(const std::string& name, const std::string& content) {
    const auto path = (std::filesystem::temp_directory_path() / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

TEST(ChatLine, ErrorsNameFileLineAndField) {
    EXPECT_NE(error_of("{\"messages\": [").find("chats.jsonl line 7"), std::string::npos);
    EXPECT_NE(error_of("{\"msgs\": []}").find("chats.jsonl line 7: missing 'messages'"), std::string::npos);
    EXPECT_NE(error_of("[1]").find("chats.jsonl line 7"), std::string::npos);
    EXPECT_NE(error_of(R"({"messages": []})").find("messages: expected a non-empty array"), std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]})")
                  .find("line 7: messages[1].role: unknown role 'bot'"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "user", "content": ""}]})").find("messages[0].content: empty"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "user"}]})").find("messages[0].content: missing"), std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "user", "content": 3}]})").find("messages[0].content"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "user", "content": "a", "target": true}]})")
                  .find("messages[0].target: only assistant"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "assistant", "content": "ab", "prefix_chars": 3}]})")
                  .find("messages[0].prefix_chars: 3 is past the end"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"task": "poetry", "messages": [{"role": "user", "content": "a"}]})").find("task"),
              std::string::npos);
    EXPECT_NE(error_of(R"({"messages": [{"role": "user", "content": "a"}], "messages": []})").find("twice"),
              std::string::npos);
}

TEST(ChatLine, EmotionExamplesAreSkipped) {
    ChatExample example;
    EXPECT_FALSE(parse_chat_line(R"({"task": "emotion", "messages": [{"role": "user", "content": "yay"}]})", "f", 1,
                                 example));
}

TEST(ChatTargets, OnlyAssistantContentAndEndMarkerAreTrained) {
    const auto example = tokenize_line(
        R"({"messages": [{"role": "user", "content": "I passed!"}, {"role": "assistant", "content": "So proud of you!"}]})");
    EXPECT_EQ(trained_text(example), "So proud of you!<|im_end|>");
    EXPECT_EQ(example.targets.size(), example.tokens.size());
    EXPECT_EQ(example.targets.back(), kIgnoreTarget);  // nothing follows the last token
    // The rendered chat is the template's exact text (default system prompt included).
    EXPECT_EQ(model().tokenizer.decode(example.tokens),
              "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
              "<|im_start|>user\nI passed!<|im_end|>\n<|im_start|>assistant\nSo proud of you!<|im_end|>\n");
}

TEST(ChatTargets, PlainChatTrainsEveryAssistantTurn) {
    const auto example = tokenize_line(
        R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hey you."},)"
        R"( {"role": "user", "content": "sad"}, {"role": "assistant", "content": "Oh no, what happened?"}]})");
    EXPECT_EQ(trained_text(example), "Hey you.<|im_end|>Oh no, what happened?<|im_end|>");
}

TEST(ChatTargets, PreparedExampleHonoursTargetFlagsAndStylePrefix) {
    // As `kindred data prepare` writes it with style tokens at the assistant: prefix "<tone:warm> " (12 bytes).
    const auto example = tokenize_line(
        R"({"id": "ed-1", "task": "chat", "messages": [{"role": "user", "content": "hi"},)"
        R"( {"role": "assistant", "content": "Not me.", "target": false},)"
        R"( {"role": "user", "content": "sad"},)"
        R"( {"role": "assistant", "content": "<tone:warm> Oh no, what happened?", "target": true, "prefix_chars": 12}]})");
    // The space joins " Oh", the reply's first token, so it is trained with it; the tags are not.
    EXPECT_EQ(trained_text(example), " Oh no, what happened?<|im_end|>");
}

// Qwen3 renders an empty <think> block before the last reply; the generation prompt supplies it,
// so it is not trained, and the style prefix is found after it.
TEST(ChatTargets, Qwen3SkipsTheEmptyThinkBlockAndTheStylePrefix) {
    const auto tokenizer = text::Tokenizer::from_hf(testing::shared_path("tokenizers/qwen3/tokenizer.json"),
                                                    testing::shared_path("tokenizers/qwen3/tokenizer_config.json"));
    const auto chat = text::ChatTemplate::detect(tokenizer.chat_template(), "Qwen3");
    ChatExample example;
    ASSERT_TRUE(parse_chat_line(
        R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hey!"},)"
        R"( {"role": "user", "content": "sad"},)"
        R"( {"role": "assistant", "content": "<tone:warm> Oh no, what happened?", "prefix_chars": 12}]})",
        "q.jsonl", 1, example));
    const auto tokens = tokenize_example(example, tokenizer, chat, "q.jsonl");
    std::vector<std::int32_t> ids;
    for (std::size_t t = 0; t < tokens.targets.size(); ++t) {
        if (tokens.targets[t] != kIgnoreTarget) ids.push_back(tokens.targets[t]);
    }
    EXPECT_EQ(tokenizer.decode(ids), "Hey!<|im_end|> Oh no, what happened?<|im_end|>");
    EXPECT_NE(tokenizer.decode(tokens.tokens).find("<think>\n\n</think>\n\n<tone:warm> Oh no"), std::string::npos);
}

TEST(ChatDataset, LoadsTheSmokeDataAndDropsTooLongWithACount) {
    const auto path = testing::source_path("data/chat-smoke.jsonl");
    ChatDatasetOptions options{512, model().context_length};
    const auto all = load_chat_dataset(path, model().tokenizer, model().chat, options);
    EXPECT_EQ(all.stats.lines, 40u);
    EXPECT_EQ(all.examples.size(), 40u);
    EXPECT_TRUE(warnings(all, options).empty());
    std::size_t longest = 0, targets = 0;
    for (const auto& e : all.examples) {
        longest = std::max(longest, e.tokens.size());
        targets += e.target_count;
        EXPECT_GT(e.target_count, 0u);
    }
    EXPECT_EQ(targets, all.stats.target_tokens);

    options.max_seq_len = longest - 1;
    const auto some = load_chat_dataset(path, model().tokenizer, model().chat, options);
    EXPECT_GT(some.stats.too_long, 0u);
    EXPECT_EQ(some.stats.kept + some.stats.too_long, 40u);
    EXPECT_EQ(some.stats.longest_dropped, longest);
    const auto lines = warnings(some, options);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("dropped"), std::string::npos);
    EXPECT_NE(lines[0].find("chat-smoke.jsonl"), std::string::npos);
}

TEST(ChatDataset, CountsSkippedLinesAndRefusesBadOptions) {
    const auto path = write_temp("kindred_sftdata_skip.jsonl",
                                 "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                                 "\"content\": \"hey\"}]}\n\n"
                                 "{\"task\": \"emotion\", \"messages\": [{\"role\": \"user\", \"content\": \"yay\"}]}\n"
                                 "{\"messages\": [{\"role\": \"user\", \"content\": \"anyone?\"}]}\n");
    const ChatDatasetOptions options{256, model().context_length};
    const auto dataset = load_chat_dataset(path, model().tokenizer, model().chat, options);
    EXPECT_EQ(dataset.stats.lines, 3u);
    EXPECT_EQ(dataset.stats.kept, 1u);
    EXPECT_EQ(dataset.stats.no_targets, 2u);
    ASSERT_EQ(warnings(dataset, options).size(), 1u);

    EXPECT_THROW(load_chat_dataset(path, model().tokenizer, model().chat, {model().context_length + 1, model().context_length}),
                 Error);
    EXPECT_THROW(load_chat_dataset(path, model().tokenizer, model().chat, {0, model().context_length}), Error);
    EXPECT_THROW(load_chat_dataset(path + ".missing", model().tokenizer, model().chat, options), Error);

    const auto bad = write_temp("kindred_sftdata_bad.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
                                                             "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n");
    try {
        load_chat_dataset(bad, model().tokenizer, model().chat, options);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("kindred_sftdata_bad.jsonl line 2: messages[0].role"), std::string::npos)
            << e.what();
    }
    std::filesystem::remove(path);
    std::filesystem::remove(bad);
}

}  // namespace
}  // namespace kindred::train
