// Tests for train/chat_dataset.h with the default model's (SmolLM2) tokenizer and chat template:
// line parsing errors, assistant-only targets, target turns and style prefixes of prepared
// examples, the drop-too-long policy, opening assistant turns under a user-first template, head
// sites and their labels, and the safety teacher's rendering.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/style.h"
#include "data/labels.h"
#include "formats/gguf.h"
#include "scratch_dir.h"
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

// Loaded once: building the 151k-token vocabulary takes seconds.
const Model& qwen3() {
    static const Model m = [] {
        auto tokenizer = text::Tokenizer::from_hf(testing::shared_path("tokenizers/qwen3/tokenizer.json"),
                                                  testing::shared_path("tokenizers/qwen3/tokenizer_config.json"));
        auto chat = text::ChatTemplate::detect(tokenizer.chat_template(), "Qwen3");
        return Model{std::move(tokenizer), chat, 0};
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

TokenizedExample tokenize_line(std::string_view line, bool keep_emotion_only = false, std::string_view rules = {}) {
    ChatExample example;
    EXPECT_TRUE(parse_chat_line(line, "chats.jsonl", 1, example, keep_emotion_only));
    return tokenize_example(example, model().tokenizer, model().chat, "chats.jsonl", rules);
}

std::int32_t emotion_id(std::string_view name) { return static_cast<std::int32_t>(*data::emotion_index(name)); }

std::int32_t strategy_id(std::string_view name) {
    const auto all = data::strategies();
    return static_cast<std::int32_t>(std::find(all.begin(), all.end(), name) - all.begin());
}

// The tokens the model has seen when it starts to reply after `messages`: the conversation so far
// rendered with the generation prompt.
std::vector<std::int32_t> prompt_tokens(const std::vector<text::ChatMessage>& messages) {
    return model().tokenizer.encode(model().chat.render(messages, /*add_generation_prompt=*/true).text);
}

std::string error_of_keep(std::string_view line) {
    ChatExample example;
    try {
        parse_chat_line(line, "prep.jsonl", 3, example, true);
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
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
    const auto& tokenizer = qwen3().tokenizer;
    const auto& chat = qwen3().chat;
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

// Gemma 3's template needs a user turn first: an opening assistant turn (ESConv's supporter greeting
// first) is left out with its target and strategy, counted and reported; the rest still trains.
TEST(ChatDataset, LeavesOutOpeningAssistantTurnsForUserFirstTemplates) {
    const testing::ScratchDir dir("gemma-opening");
    const std::string path = (dir.path() / "chats.jsonl").string();
    std::ofstream(path) << R"({"messages": [{"role": "system", "content": "Be kind."}, {"role": "assistant", "content": "Hey, how are you?", "strategies": ["Question"]}, {"role": "user", "content": "Tired."}, {"role": "assistant", "content": "I hear you."}]})"
                        << "\n" << R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})" << "\n";
    const text::ChatTemplate gemma = text::ChatTemplate::of(text::ChatFormat::Gemma3);
    ChatDatasetOptions options{512, model().context_length};
    const auto dataset = load_chat_dataset(path, model().tokenizer, gemma, options);
    EXPECT_EQ(dataset.stats.kept, 2u);
    EXPECT_EQ(dataset.stats.opening_assistant_dropped, 1u);
    const auto lines = warnings(dataset, options);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("opening assistant turns of 1 of 2"), std::string::npos) << lines[0];
    // The same file keeps every turn with a template that has no such rule.
    EXPECT_EQ(load_chat_dataset(path, model().tokenizer, model().chat, options).stats.opening_assistant_dropped, 0u);

    ChatExample example;
    parse_chat_line(R"({"messages": [{"role": "assistant", "content": "A"}, {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}]})",
                    "x.jsonl", 1, example);
    EXPECT_TRUE(drop_opening_assistant_turns(example));
    ASSERT_EQ(example.messages.size(), 1u);
    EXPECT_EQ(example.messages[0].content, "C");
    EXPECT_EQ(example.target.size(), 1u);
    EXPECT_EQ(example.strategy.size(), 1u);
    EXPECT_FALSE(drop_opening_assistant_turns(example));
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

// The pooled position of each target turn is the assistant header's last token: the tokens up to
// and including it are exactly the prompt an inference run would have fed before replying.
TEST(HeadSites, SitAtTheAssistantHeaderWithTheExampleLabels) {
    const auto example = tokenize_line(
        R"({"source": "esconv", "task": "chat", "messages": [{"role": "system", "content": "Be kind."},)"
        R"( {"role": "user", "content": "hi"},)"
        R"( {"role": "assistant", "content": "Hello, I am here.", "target": true, "strategies": ["Questions", "Others"]},)"
        R"( {"role": "user", "content": "I lost my job."},)"
        R"( {"role": "assistant", "content": "Not trained.", "target": false, "strategies": ["Information"]},)"
        R"( {"role": "user", "content": "and?"},)"
        R"( {"role": "assistant", "content": "<tone:warm> That is hard.", "target": true, "prefix_chars": 12}],)"
        R"( "emotion": {"labels": ["sadness"], "source_labels": ["sadness"]}, "valence": -0.6, "arousal": -0.3})");
    EXPECT_EQ(example.source, "esconv");
    EXPECT_FALSE(example.multi_label);
    ASSERT_EQ(example.sites.size(), 2u);  // target turns only
    const std::vector<text::ChatMessage> first = {{"system", "Be kind.", {}}, {"user", "hi", {}}};
    auto second = first;
    second.push_back({"assistant", "Hello, I am here.", {}});
    second.push_back({"user", "I lost my job.", {}});
    second.push_back({"assistant", "Not trained.", {}});
    second.push_back({"user", "and?", {}});
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& site = example.sites[i];
        const auto prompt = prompt_tokens(i == 0 ? first : second);
        ASSERT_EQ(static_cast<std::size_t>(site.position) + 1, prompt.size()) << "site " << i;
        EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), example.tokens.begin())) << "site " << i;
        const auto through_site = model().tokenizer.decode({example.tokens.data(), prompt.size()});
        EXPECT_TRUE(through_site.ends_with("<|im_start|>assistant\n")) << through_site;
        EXPECT_EQ(site.emotions, std::vector<std::int32_t>{emotion_id("sadness")});
        EXPECT_TRUE(site.has_va);
        EXPECT_FLOAT_EQ(site.valence, -0.6f);
        EXPECT_FLOAT_EQ(site.arousal, -0.3f);
    }
    EXPECT_EQ(example.sites[0].strategy, strategy_id("Question"));  // first strategy, old spelling normalised
    EXPECT_EQ(example.sites[1].strategy, -1);                         // no strategies on that turn
    // The site token itself is not a target; the reply's first token is predicted from it.
    EXPECT_NE(example.targets[static_cast<std::size_t>(example.sites[0].position)], kIgnoreTarget);
    EXPECT_EQ(example.targets[static_cast<std::size_t>(example.sites[0].position) - 1], kIgnoreTarget);
}

// Qwen3's last reply follows an empty think block that the non-thinking generation prompt
// supplies: the site is that prompt's last token, so it still matches the inference state.
TEST(HeadSites, Qwen3PoolsAfterTheGenerationPromptsThinkBlock) {
    const auto& tokenizer = qwen3().tokenizer;
    const auto& chat = qwen3().chat;
    ChatExample example;
    ASSERT_TRUE(parse_chat_line(
        R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hey!"},)"
        R"( {"role": "user", "content": "sad"}, {"role": "assistant", "content": "Oh no."}],)"
        R"( "emotion": {"labels": ["sadness"]}})",
        "q.jsonl", 1, example));
    const auto tokens = tokenize_example(example, tokenizer, chat, "q.jsonl");
    ASSERT_EQ(tokens.sites.size(), 2u);
    const std::vector<text::ChatMessage> before_last = {{"user", "hi", {}}, {"assistant", "Hey!", {}}, {"user", "sad", {}}};
    const auto prompt = tokenizer.encode(chat.render(before_last, /*add_generation_prompt=*/true).text);
    ASSERT_EQ(static_cast<std::size_t>(tokens.sites[1].position) + 1, prompt.size());
    EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), tokens.tokens.begin()));
    EXPECT_TRUE(tokenizer.decode(prompt).ends_with("<think>\n\n</think>\n\n"));
    EXPECT_TRUE(tokenizer.decode({tokens.tokens.data(), static_cast<std::size_t>(tokens.sites[0].position) + 1})
                    .ends_with("<|im_start|>assistant\n"));
}

TEST(HeadSites, PlainChatHasNone) {
    const auto example = tokenize_line(
        R"({"messages": [{"role": "user", "content": "I passed!"}, {"role": "assistant", "content": "So proud of you!"}]})");
    EXPECT_TRUE(example.sites.empty());
    EXPECT_TRUE(example.source.empty());
    EXPECT_TRUE(example.teacher_tokens.empty());
}

// GoEmotions: no assistant turn; kept on request, rendered with the generation prompt, the site
// is the last token and the labels are the soft multi-label target.
TEST(HeadSites, EmotionOnlyExamplesPoolTheLastTokenWhenKept) {
    const std::string line =
        R"({"source": "goemotions", "task": "emotion", "messages": [{"role": "system", "content": "Be kind."},)"
        R"( {"role": "user", "content": "Good luck, I hope it works out!"}],)"
        R"( "emotion": {"labels": ["hope", "caring"], "source_labels": ["optimism", "caring"]}, "valence": 0.55, "arousal": 0.2})";
    ChatExample skipped;
    EXPECT_FALSE(parse_chat_line(line, "f", 1, skipped));
    const auto example = tokenize_line(line, /*keep_emotion_only=*/true);
    EXPECT_TRUE(example.multi_label);
    EXPECT_EQ(example.target_count, 0u);
    EXPECT_EQ(example.tokens, prompt_tokens({{"system", "Be kind.", {}}, {"user", "Good luck, I hope it works out!", {}}}));
    ASSERT_EQ(example.sites.size(), 1u);
    EXPECT_EQ(static_cast<std::size_t>(example.sites[0].position), example.tokens.size() - 1);
    auto labels = std::vector<std::int32_t>{emotion_id("hope"), emotion_id("caring")};
    std::sort(labels.begin(), labels.end());
    EXPECT_EQ(example.sites[0].emotions, labels);
    EXPECT_EQ(example.sites[0].strategy, -1);
    EXPECT_TRUE(example.teacher_tokens.empty());  // no target tokens: the teacher has nothing to say
}

// In the GoEmotions space (heads.emotion_labels: goemotions) a GoEmotions example's labels are its
// source labels in emotions.txt order; another source's labels are not GoEmotions labels, so its
// sites carry none.
TEST(HeadSites, GoEmotionsSpaceReadsTheSourceLabels) {
    const std::string goemotions =
        R"({"source": "goemotions", "task": "emotion", "messages": [{"role": "user", "content": "Good luck!"}],)"
        R"( "emotion": {"labels": ["hope", "caring"], "source_labels": ["optimism", "caring"]}})";
    ChatExample example;
    ASSERT_TRUE(parse_chat_line(goemotions, "f", 1, example, true, data::EmotionSpace::GoEmotions));
    EXPECT_EQ(example.emotions, (std::vector<std::int32_t>{5, 20}));  // caring, optimism
    const std::string ed =
        R"({"source": "empathetic_dialogues", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],)"
        R"( "emotion": {"labels": ["sadness"], "source_labels": ["sad"]}})";
    ASSERT_TRUE(parse_chat_line(ed, "f", 2, example, true, data::EmotionSpace::GoEmotions));
    EXPECT_TRUE(example.emotions.empty());
    const std::string bad =
        R"({"source": "goemotions", "task": "emotion", "messages": [{"role": "user", "content": "x"}],)"
        R"( "emotion": {"source_labels": ["hope"]}})";
    try {
        parse_chat_line(bad, "f", 3, example, true, data::EmotionSpace::GoEmotions);
        FAIL() << "'hope' is not a GoEmotions label";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("f line 3: emotion.source_labels[0]: 'hope' is not an emotion-head label (the goemotions set"),
                  std::string::npos)
            << error.what();
    }
}

TEST(HeadSites, BadLabelsNameFileLineAndField) {
    const std::string head = R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b")";
    EXPECT_NE(error_of_keep(head + R"(}], "emotion": {"labels": ["sadness", "glee"]}})")
                  .find("prep.jsonl line 3: emotion.labels[1]: 'glee' is not an emotion-head label"),
              std::string::npos);
    EXPECT_NE(error_of_keep(head + R"(}], "emotion": {"labels": "sadness"}})").find("emotion.labels: expected an array"),
              std::string::npos);
    EXPECT_NE(error_of_keep(head + R"(, "strategies": ["Question", "Hugging"]}]})")
                  .find("prep.jsonl line 3: messages[1].strategies[1]: unknown strategy 'Hugging'"),
              std::string::npos);
    EXPECT_NE(error_of_keep(R"({"messages": [{"role": "user", "content": "a", "strategies": ["Question"]}]})")
                  .find("messages[0].strategies: only assistant"),
              std::string::npos);
    EXPECT_NE(error_of_keep(head + R"(}], "valence": 0.5})").find("line 3: valence and arousal: give both"),
              std::string::npos);
    EXPECT_NE(error_of_keep(head + R"(}], "valence": 0.5, "arousal": 1.5})").find("arousal: 1.5 is outside"),
              std::string::npos);
    EXPECT_NE(error_of_keep(head + R"(}], "valence": "high", "arousal": 0})").find("valence: expected a number"),
              std::string::npos);
    EXPECT_NE(error_of_keep(head + R"(}], "source": 3})").find("line 3: source: expected a string"), std::string::npos);
}

// The teacher sees the rules in front of the system message; its targets are the student's.
TEST(SafetyTeacherInput, PrependsTheRulesAndAlignsTheTargets) {
    const std::string rules = "Never give medical advice.";
    const auto check = [&](const TokenizedExample& example, const std::string& system) {
        ASSERT_EQ(example.teacher_positions.size(), example.target_count);
        std::size_t k = 0;
        for (std::size_t t = 0; t < example.targets.size(); ++t) {
            if (example.targets[t] == kIgnoreTarget) continue;
            const auto p = static_cast<std::size_t>(example.teacher_positions[k++]);
            EXPECT_EQ(example.teacher_tokens[p + 1], example.targets[t]);
            // The same context follows the system turn in both renderings.
            EXPECT_EQ(example.teacher_tokens.size() - p, example.tokens.size() - t);
        }
        EXPECT_EQ(model().tokenizer.decode(example.teacher_tokens).rfind("<|im_start|>system\n" + system + "<|im_end|>", 0),
                  0u);
    };
    check(tokenize_line(R"({"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "I feel sick."},)"
                        R"( {"role": "assistant", "content": "<tone:calm> I'm sorry.", "prefix_chars": 12},)"
                        R"( {"role": "user", "content": "What should I take?"}, {"role": "assistant", "content": "Ask a doctor."}]})",
                        false, rules),
          rules + "\n\nBe kind.");
    // No system message: one of the rules takes the default system prompt's place.
    check(tokenize_line(R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hey."}]})",
                        false, rules),
          rules);
}

TEST(ChatDataset, LoadsPreparedExamplesWithSites) {
    // Four lines of `kindred data prepare` output on data/samples: an ED chat (2 target turns), an
    // ESConv chat (7 target turns with strategies), GoEmotions with two labels and with one.
    const auto path = testing::source_path("tests/train/fixtures/prepared.jsonl");
    ChatDatasetOptions options{1024, model().context_length};
    const auto chats = load_chat_dataset(path, model().tokenizer, model().chat, options);
    ASSERT_EQ(chats.examples.size(), 2u);
    EXPECT_EQ(chats.stats.no_targets, 2u);
    EXPECT_EQ(chats.examples[0].source, "empathetic_dialogues");
    EXPECT_EQ(chats.examples[0].sites.size(), 2u);
    EXPECT_EQ(chats.examples[1].sites.size(), 7u);
    for (const auto& site : chats.examples[1].sites) {
        EXPECT_GE(site.strategy, 0);
        EXPECT_EQ(site.emotions, std::vector<std::int32_t>{emotion_id("shame")});
    }
    EXPECT_EQ(chats.examples[1].sites[2].strategy, strategy_id("Restatement or Paraphrasing"));
    EXPECT_EQ(chats.stats.sites, 9u);

    options.keep_emotion_only = true;
    options.teacher_rules = "Be safe.";
    const auto all = load_chat_dataset(path, model().tokenizer, model().chat, options);
    ASSERT_EQ(all.examples.size(), 4u);
    EXPECT_EQ(all.stats.no_targets, 0u);
    EXPECT_TRUE(warnings(all, options).empty());
    EXPECT_TRUE(all.examples[2].multi_label);
    EXPECT_EQ(all.examples[2].sites.size(), 1u);
    EXPECT_EQ(all.examples[2].sites[0].emotions.size(), 2u);
    EXPECT_EQ(all.examples[0].teacher_positions.size(), all.examples[0].target_count);
    EXPECT_EQ(all.examples[1].teacher_positions.size(), all.examples[1].target_count);
}

// The recipe's data.style: put into every example as it is read, recorded in ChatDataset::styles
// (what the adapter's styles.json lists), and refused for data that already carries a style.
TEST(ChatDataset, RecipeStyleIsAppliedRecordedAndNeverDoubled) {
    const auto path = testing::source_path("data/chat-smoke.jsonl");
    ChatDatasetOptions options{512, model().context_length};
    const auto plain = load_chat_dataset(path, model().tokenizer, model().chat, options);
    EXPECT_TRUE(plain.styles.empty());

    options.style = data::parse_style_tokens("<persona:best_friend><tone:warm>", data::StylePlacement::System);
    const auto styled = load_chat_dataset(path, model().tokenizer, model().chat, options);
    ASSERT_EQ(styled.styles.size(), 1u);
    EXPECT_EQ(styled.styles[0].text, "<tone:warm><persona:best_friend>");
    ASSERT_EQ(styled.examples.size(), plain.examples.size());
    const std::string text = model().tokenizer.decode(styled.examples[0].tokens);
    EXPECT_NE(text.find("<|im_start|>system\n<tone:warm><persona:best_friend> You are Kindred"), std::string::npos) << text;
    EXPECT_EQ(styled.examples[0].target_count, plain.examples[0].target_count);  // the replies' targets are untouched

    options.style = data::parse_style_tokens("<tone:calm>", data::StylePlacement::Assistant);
    const auto replies = load_chat_dataset(path, model().tokenizer, model().chat, options);
    ASSERT_EQ(replies.styles.size(), 1u);
    EXPECT_EQ(replies.styles[0].placement, data::StylePlacement::Assistant);
    EXPECT_EQ(trained_text(replies.examples[0]).find("<tone:calm>"), std::string::npos);  // the tags are not trained

    testing::ScratchDir dir("kindred-styled-data");
    const std::string styled_path = dir / "styled.jsonl";
    std::ofstream(styled_path) << R"({"messages": [{"role": "system", "content": "<tone:warm> Be kind."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hey."}]})"
                               << "\n";
    options.style = data::parse_style_tokens("<tone:calm>", data::StylePlacement::System);
    try {
        load_chat_dataset(styled_path, model().tokenizer, model().chat, options);
        FAIL() << "a second style was put on styled data";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("styled.jsonl line 1: the example already carries style tokens"), std::string::npos)
            << error.what();
    }
    options.style.reset();
    const auto carried = load_chat_dataset(styled_path, model().tokenizer, model().chat, options);
    ASSERT_EQ(carried.styles.size(), 1u);  // styles prepared into the data are recorded too
    EXPECT_EQ(carried.styles[0].text, "<tone:warm>");
}

}  // namespace
}  // namespace kindred::train
