// Tokenizer tests against references: the shared Qwen3 / gpt-oss vectors (HF tokenizers),
// plus behaviour the references pin down (added-token flags, split behaviours, spans, errors).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_paths.h"
#include "text/pretokenizer.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace kindred::text {
namespace {

using testing::shared_path;

const Tokenizer& qwen3() {
    static const Tokenizer tokenizer = Tokenizer::from_hf(shared_path("tokenizers/qwen3/tokenizer.json"),
                                                          shared_path("tokenizers/qwen3/tokenizer_config.json"));
    return tokenizer;
}

const Tokenizer& gpt_oss() {
    static const Tokenizer tokenizer = Tokenizer::from_hf(shared_path("tokenizers/gpt-oss/tokenizer.json"),
                                                          shared_path("tokenizers/gpt-oss/tokenizer_config.json"));
    return tokenizer;
}

nlohmann::json vectors() {
    std::ifstream in(shared_path("tokenizers/vectors.json"));
    return nlohmann::json::parse(in);
}

// Qwen3 normalizes to NFC, so its decode gives back the NFC form of the input.
void expect_vectors(const Tokenizer& tokenizer, const char* key, bool nfc) {
    const nlohmann::json cases = vectors();
    ASSERT_GE(cases.size(), 30u);
    for (const nlohmann::json& entry : cases) {
        const std::string text = entry["text"].get<std::string>();
        const auto expected = entry[key].get<std::vector<std::int32_t>>();
        const Encoding encoding = tokenizer.encode_with_spans(text);
        EXPECT_EQ(encoding.ids, expected) << key << " text: " << text;
        NormalizedText normalized;
        normalize(text, 0, text.size(), NormalForm::NFC, normalized);
        EXPECT_EQ(tokenizer.decode(encoding.ids), nfc ? normalized.text : text) << key;
        ASSERT_EQ(encoding.spans.size(), encoding.ids.size());
    }
}

TEST(TokenizerVectors, Qwen3MatchesReference) { expect_vectors(qwen3(), "qwen3", true); }
TEST(TokenizerVectors, GptOssMatchesReference) { expect_vectors(gpt_oss(), "gpt_oss", false); }

TEST(TokenizerHf, SpecialTokensAndConfig) {
    const Tokenizer& t = qwen3();
    EXPECT_EQ(t.vocab_size(), 151669u);
    EXPECT_EQ(t.find_token("<|im_start|>"), 151644);
    EXPECT_TRUE(t.is_special(151644));
    EXPECT_FALSE(t.is_special(151667));  // <think> is added but not special
    EXPECT_FALSE(t.bos_id().has_value());
    EXPECT_EQ(t.eos_id(), 151645);
    EXPECT_NE(t.chat_template().find("<|im_start|>"), std::string::npos);
    EXPECT_EQ(t.token_text(151644), "<|im_start|>");
    EXPECT_EQ(t.token_text(9707), "Hello");
    EXPECT_EQ(t.token_text(220), "\xC4\xA0");  // the byte-level spelling of " "
    EXPECT_EQ(t.token_bytes(220), " ");
    EXPECT_NE(t.summary().find("151669 tokens"), std::string::npos);
    EXPECT_EQ(gpt_oss().bos_id(), gpt_oss().find_token("<|startoftext|>"));
    EXPECT_EQ(gpt_oss().eos_id(), gpt_oss().find_token("<|return|>"));
    EXPECT_TRUE(gpt_oss().chat_template().empty());
}

TEST(TokenizerHf, ParseSpecialControlsOnlySpecialTokens) {
    const Tokenizer& t = qwen3();
    const std::string text = "<|im_start|>user\nhi<think>x</think><|im_end|>";
    const auto parsed = t.encode(text, true);
    ASSERT_GE(parsed.size(), 2u);
    EXPECT_EQ(parsed.front(), 151644);
    EXPECT_EQ(parsed.back(), 151645);
    const auto plain = t.encode(text, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 151645), 0);
    // <think> (id 151667) is a non-special added token: matched either way, as HF does.
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 151667), 1);
    EXPECT_EQ(t.decode(plain), text);
    EXPECT_EQ(t.decode(parsed), text);
}

TEST(TokenizerHf, SpansCoverTheInputBytes) {
    const Tokenizer& t = qwen3();
    const std::string text = "Hi <|im_start|>caf\xC3\xA9 \xF0\x9F\x98\xA2 done";
    const Encoding e = t.encode_with_spans(text);
    std::size_t cursor = 0;
    for (std::size_t i = 0; i < e.ids.size(); ++i) {
        EXPECT_EQ(e.spans[i].first, cursor) << i;
        EXPECT_EQ(text.substr(e.spans[i].first, e.spans[i].second - e.spans[i].first), t.decode(std::vector{e.ids[i]}))
            << i;
        cursor = e.spans[i].second;
    }
    EXPECT_EQ(cursor, text.size());
}

TEST(TokenizerHf, NfcSpansPointIntoTheOriginalText) {
    // "e" + U+0301 becomes U+00E9 under NFC; the token for it spans the original 3 bytes.
    const Tokenizer& t = qwen3();
    const std::string text = "caf" "e\xCC\x81" "!";
    const Encoding e = t.encode_with_spans(text);
    EXPECT_EQ(e.ids, t.encode("caf\xC3\xA9!"));
    ASSERT_FALSE(e.spans.empty());
    EXPECT_EQ(e.spans.back(), std::make_pair(std::size_t{6}, std::size_t{7}));
    for (const auto& [begin, end] : e.spans) {
        EXPECT_LE(begin, end);
        EXPECT_LE(end, text.size());
    }
}

TEST(TokenizerHf, InvalidUtf8RoundTrips) {
    const std::string text = std::string("ok \xFF\xFE bad \xE2\x82 cut \xC3", 17);
    for (const Tokenizer* t : {&qwen3(), &gpt_oss()}) {
        EXPECT_EQ(t->decode(t->encode(text)), text);
    }
}

TEST(TokenizerHf, DecodeRejectsOutOfRangeIds) {
    const std::vector<std::int32_t> ids{1, -1};
    EXPECT_THROW(qwen3().decode(ids), Error);
    const std::vector<std::int32_t> big{1 << 30};
    EXPECT_THROW(qwen3().decode(big), Error);
}

TEST(StreamingDecoder, HoldsBackPartialCharacters) {
    const Tokenizer& t = qwen3();
    const std::string text = "Emoji \xF0\x9F\x98\xA2\xF0\x9F\x98\xAD and \xE4\xB8\xAD\xE6\x96\x87 end";
    const auto ids = t.encode(text);
    StreamingDecoder decoder(t);
    std::string joined;
    for (const std::int32_t id : ids) {
        const std::string piece = decoder.push(id);
        EXPECT_TRUE(utf8_is_complete(piece)) << "piece split a character";
        joined += piece;
    }
    joined += decoder.finish();
    EXPECT_EQ(joined, text);
}

TEST(TokenizerHf, HugeWordsAndRunsStayFastAndExact) {
    // Long single words take the heap-based merge path; long runs stress the regexes.
    for (const std::string& text : {std::string(300000, 'a'), std::string(300000, ' ') + "x",
                                    std::string(100000, '7'), std::string(200000, '\n') + "\t",
                                    [] { std::string s; for (int i = 0; i < 50000; ++i) s += "\xE4\xB8\xAD"; return s; }()}) {
        for (const Tokenizer* t : {&qwen3(), &gpt_oss()}) {
            const auto ids = t->encode(text);
            EXPECT_EQ(t->decode(ids), text);
            EXPECT_LE(ids.size(), text.size());  // Qwen3 gives each digit its own token
        }
    }
}

TEST(TokenizerHf, ConcurrentEncodesAgree) {
    // One thread holds the shared word cache; the others fall back to private caches.
    const Tokenizer& t = qwen3();
    std::vector<std::string> texts;
    for (int i = 0; i < 200; ++i) texts.push_back("Sentence number " + std::to_string(i) + " isn't like the others, right?");
    std::vector<std::vector<std::int32_t>> expected;
    for (const std::string& text : texts) expected.push_back(t.encode(text));
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int k = 0; k < 4; ++k) {
        threads.emplace_back([&] {
            for (std::size_t i = 0; i < texts.size(); ++i) {
                if (t.encode(texts[i]) != expected[i]) ++mismatches;
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// ---- HF pre-tokenizer behaviours and added-token flags, on a tiny synthetic tokenizer ----

class TempFile {
public:
    TempFile(const std::string& name, const std::string& content) : path_(::testing::TempDir() + name) {
        std::ofstream(path_, std::ios::binary) << content;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// A byte-level vocabulary of the 256 bytes plus a few merges, with the given JSON pieces.
std::string tiny_tokenizer_json(const nlohmann::json& pre_tokenizer, const nlohmann::json& added,
                                const nlohmann::json& model_overrides = nlohmann::json::object()) {
    nlohmann::json vocab = nlohmann::json::object();
    const ByteLevelTable& table = byte_level_table();
    for (int b = 0; b < 256; ++b) {
        std::string s;
        utf8_append(s, table.byte_to_code_point[static_cast<std::size_t>(b)]);
        vocab[s] = b;
    }
    vocab["ab"] = 256;
    vocab["abc"] = 257;
    vocab["\xC4\xA0" "a"] = 258;  // " a"
    nlohmann::json model{{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c", "\xC4\xA0 a"}}};
    model.update(model_overrides);
    nlohmann::json root{{"model", model}, {"normalizer", nullptr}, {"pre_tokenizer", pre_tokenizer}, {"added_tokens", added},
                        {"decoder", {{"type", "ByteLevel"}}}};
    return root.dump();
}

nlohmann::json byte_level_only() { return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}; }

nlohmann::json split_then_byte_level(const std::string& regex, const std::string& behavior, bool invert) {
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", behavior}, {"invert", invert}},
              byte_level_only()}}};
}

std::vector<std::string> pieces(const Tokenizer& t, const std::string& text) {
    std::vector<std::string> out;
    for (const std::int32_t id : t.encode(text)) out.emplace_back(t.token_bytes(id));
    return out;
}

TEST(TokenizerSynthetic, BpeMergesByRank) {
    const TempFile file("bpe_rank.json", tiny_tokenizer_json(byte_level_only(), nlohmann::json::array()));
    const Tokenizer t = Tokenizer::from_hf(file.path());
    EXPECT_EQ(t.encode("abc"), (std::vector<std::int32_t>{257}));
    EXPECT_EQ(pieces(t, "xabcab a"), (std::vector<std::string>{"x", "abc", "ab", " a"}));
}

TEST(TokenizerSynthetic, IgnoreMergesTakesWholeWords) {
    // "ac" is in the vocabulary but no merge builds it: only ignore_merges finds it.
    nlohmann::json pre = byte_level_only();
    std::string json = tiny_tokenizer_json(pre, nlohmann::json::array(), {{"ignore_merges", true}});
    nlohmann::json root = nlohmann::json::parse(json);
    root["model"]["vocab"]["ac"] = 259;
    const TempFile with("ignore_merges.json", root.dump());
    EXPECT_EQ(Tokenizer::from_hf(with.path()).encode("ac"), (std::vector<std::int32_t>{259}));
    root["model"]["ignore_merges"] = false;
    const TempFile without("no_ignore_merges.json", root.dump());
    EXPECT_EQ(Tokenizer::from_hf(without.path()).encode("ac"), (std::vector<std::int32_t>{'a', 'c'}));
}

TEST(TokenizerSynthetic, IgnoreMergesWholeWordWithUntokenizedByte) {
    // Byte 0xFF ("\xC3\xBF" in byte-level spelling) has no token of its own, but the word
    // "a\xFF" is one vocabulary entry: HF takes it whole, and its span is the word, not more.
    nlohmann::json root =
        nlohmann::json::parse(tiny_tokenizer_json(byte_level_only(), nlohmann::json::array(), {{"ignore_merges", true}}));
    root["model"]["vocab"].erase("\xC3\xBF");
    root["model"]["vocab"]["a\xC3\xBF"] = 259;
    const TempFile file("ignore_merges_dropped_byte.json", root.dump());
    const Tokenizer t = Tokenizer::from_hf(file.path());
    const std::string text = "a\xFF";
    const Encoding e = t.encode_with_spans(text);
    EXPECT_EQ(e.ids, (std::vector<std::int32_t>{259}));
    EXPECT_EQ(e.spans, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 2}}));
    EXPECT_EQ(e.dropped_bytes, 0u);
    EXPECT_EQ(t.decode(e.ids), text);
    // The byte alone still has no token: dropped and counted, as before.
    const Encoding alone = t.encode_with_spans("\xFF" "a");
    EXPECT_EQ(alone.ids, (std::vector<std::int32_t>{'a'}));
    EXPECT_EQ(alone.spans, (std::vector<std::pair<std::size_t, std::size_t>>{{1, 2}}));
    EXPECT_EQ(alone.dropped_bytes, 1u);
}

TEST(TokenizerSynthetic, SplitBehaviours) {
    // Splitting "ab-c--ab" on "-": the words BPE sees decide whether "ab" merges.
    const auto run = [](const std::string& behavior, bool invert) {
        const TempFile file("split_" + behavior + ".json",
                            tiny_tokenizer_json(split_then_byte_level("-", behavior, invert), nlohmann::json::array()));
        return pieces(Tokenizer::from_hf(file.path()), "ab-c--ab");
    };
    using V = std::vector<std::string>;
    EXPECT_EQ(run("Isolated", false), (V{"ab", "-", "c", "-", "-", "ab"}));
    EXPECT_EQ(run("Removed", false), (V{"ab", "c", "ab"}));  // removed text is not encoded
    EXPECT_EQ(run("MergedWithPrevious", false), (V{"ab", "-", "c", "-", "-", "ab"}));
    EXPECT_EQ(run("Contiguous", false), (V{"ab", "-", "c", "-", "-", "ab"}));
    // invert swaps the roles: the text between dashes is what gets removed.
    EXPECT_EQ(run("Removed", true), (V{"-", "-", "-"}));
}

TEST(TokenizerSynthetic, MergedBehavioursJoinNeighbours) {
    // Split on "b": MergedWithPrevious glues "b" to "a" (so "ab" merges), MergedWithNext to "c".
    const auto run = [](const std::string& behavior) {
        const TempFile file("merge_" + behavior + ".json",
                            tiny_tokenizer_json(split_then_byte_level("b", behavior, false), nlohmann::json::array()));
        return pieces(Tokenizer::from_hf(file.path()), "abc");
    };
    using V = std::vector<std::string>;
    EXPECT_EQ(run("MergedWithPrevious"), (V{"ab", "c"}));
    EXPECT_EQ(run("MergedWithNext"), (V{"a", "b", "c"}));
    EXPECT_EQ(run("Isolated"), (V{"a", "b", "c"}));
}

TEST(TokenizerSynthetic, AddedTokenFlags) {
    const nlohmann::json added = {
        {{"id", 300}, {"content", "<s>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}, {"normalized", false}},
        {{"id", 301}, {"content", "hey"}, {"special", false}, {"single_word", true}, {"normalized", false}},
    };
    const TempFile file("added.json", tiny_tokenizer_json(byte_level_only(), added));
    const Tokenizer t = Tokenizer::from_hf(file.path());
    // lstrip/rstrip swallow the surrounding spaces into the special token's span.
    const Encoding e = t.encode_with_spans("x  <s>  y");
    EXPECT_EQ(e.ids, (std::vector<std::int32_t>{'x', 300, 'y'}));
    EXPECT_EQ(e.spans[1], std::make_pair(std::size_t{1}, std::size_t{8}));
    // single_word: "hey" only as a whole word.
    EXPECT_EQ(t.encode("hey there").front(), 301);
    const auto whole = t.encode("a hey b");
    EXPECT_EQ(std::count(whole.begin(), whole.end(), 301), 1);
    const auto inside = t.encode("theyhey_");
    EXPECT_EQ(std::count(inside.begin(), inside.end(), 301), 0);
}

TEST(TokenizerSynthetic, MarkupLimitsWhereControlTokensMatch) {
    const nlohmann::json added = {
        {{"id", 300}, {"content", "<ab>"}, {"special", true}, {"normalized", false}},
        {{"id", 301}, {"content", "<a"}, {"special", false}, {"normalized", false}},
    };
    const TempFile file("markup.json", tiny_tokenizer_json(byte_level_only(), added));
    const Tokenizer t = Tokenizer::from_hf(file.path());
    using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;
    using Ids = std::vector<std::int32_t>;
    const std::string text = "x<ab>y<ab>";
    // Inside markup the control token matches, as encode_with_spans does everywhere.
    EXPECT_EQ(t.encode_with_markup(text, Ranges{{0, 10}}).ids, t.encode(text));
    EXPECT_EQ(t.encode_with_markup(text, Ranges{{1, 5}, {6, 10}}).ids, (Ids{'x', 300, 'y', 300}));
    // Outside markup, or straddling its edge, it is no candidate at all: the non-special "<a" that
    // starts at the same byte takes its place (HF's split_special_tokens does the same).
    EXPECT_EQ(t.encode_with_markup(text, Ranges{{6, 10}}).ids, (Ids{'x', 301, 'b', '>', 'y', 300}));
    EXPECT_EQ(t.encode_with_markup(text, Ranges{{0, 4}, {7, 10}}).ids, (Ids{'x', 301, 'b', '>', 'y', 301, 'b', '>'}));
    EXPECT_EQ(t.encode_with_markup(text, Ranges{}).ids, t.encode(text, false));
    const Encoding e = t.encode_with_markup(text, Ranges{{6, 10}});
    EXPECT_EQ(t.decode(e.ids), text);
    EXPECT_EQ(e.spans.back(), std::make_pair(std::size_t{6}, std::size_t{10}));
    // Ranges must be sorted, disjoint and inside the text.
    EXPECT_THROW(t.encode_with_markup(text, Ranges{{6, 10}, {0, 4}}), Error);
    EXPECT_THROW(t.encode_with_markup(text, Ranges{{0, 5}, {4, 8}}), Error);
    EXPECT_THROW(t.encode_with_markup(text, Ranges{{3, 2}}), Error);
    EXPECT_THROW(t.encode_with_markup(text, Ranges{{0, 11}}), Error);
}

TEST(TokenizerSynthetic, NormalizedAddedTokensMatchAfterNfc) {
    // A `normalized` added token is looked for in the NFC text (HF's second pass), so the
    // decomposed spelling in the input finds it; its span is the original 3 bytes.
    const nlohmann::json added = {{{"id", 300}, {"content", "\xC3\xA9"}, {"special", false}, {"normalized", true}}};
    nlohmann::json root = nlohmann::json::parse(tiny_tokenizer_json(byte_level_only(), added));
    root["normalizer"] = {{"type", "NFC"}};
    const TempFile file("normalized_added.json", root.dump());
    const Tokenizer t = Tokenizer::from_hf(file.path());
    const Encoding e = t.encode_with_spans("ab" "e\xCC\x81" "c");
    EXPECT_EQ(e.ids, (std::vector<std::int32_t>{256, 300, 'c'}));
    EXPECT_EQ(e.spans[1], std::make_pair(std::size_t{2}, std::size_t{5}));
}

TEST(PreTokenizer, GgufPreNames) {
    const PreTokenizer smollm = pre_tokenizer_for_gguf("smollm");
    std::vector<ByteRange> words;
    const std::string text = "I have 123 apples,  ok";
    PreTokenizer::Scratch scratch;
    smollm.split(text, 0, text.size(), words, scratch);
    std::vector<std::string> got;
    for (const auto& [b, e] : words) got.push_back(text.substr(b, e - b));
    EXPECT_EQ(got, (std::vector<std::string>{"I", " have", " ", "1", "2", "3", " apples", ",", " ", " ok"}));
    EXPECT_THROW(pre_tokenizer_for_gguf("no-such-pre"), Error);
}

// ---- errors ----

TEST(TokenizerErrors, MissingFile) {
    try {
        Tokenizer::from_hf("/nonexistent/tokenizer.json");
        FAIL() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos);
    }
}

TEST(TokenizerErrors, BadJson) {
    const TempFile file("bad.json", "{\"model\": {\"vocab\": [1, 2,");
    try {
        Tokenizer::from_hf(file.path());
        FAIL() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
    }
}

TEST(TokenizerErrors, BadShapesAndConfigValues) {
    const TempFile array_root("array_root.json", "[1, 2, 3]");
    EXPECT_THROW(Tokenizer::from_hf(array_root.path()), Error);
    const TempFile tokenizer("config_base.json", tiny_tokenizer_json(byte_level_only(), nlohmann::json::array()));
    const auto expect_config_error = [&](const std::string& config, const std::string& needle) {
        const TempFile file("config.json", config);
        try {
            Tokenizer::from_hf(tokenizer.path(), file.path());
            ADD_FAILURE() << "expected Error mentioning " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    expect_config_error(R"({"eos_token": "<nope>"})", "eos_token");
    expect_config_error(R"({"chat_template": [{"name": 7, "template": "x"}]})", "config.json");
    expect_config_error(R"({"chat_template": 5})", "chat_template");
    expect_config_error("{", "invalid JSON");
}

TEST(TokenizerErrors, UnknownModelType) {
    nlohmann::json root = nlohmann::json::parse(tiny_tokenizer_json(byte_level_only(), nlohmann::json::array()));
    root["model"]["type"] = "Unigram";
    const TempFile file("unigram.json", root.dump());
    try {
        Tokenizer::from_hf(file.path());
        FAIL() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
    }
}

TEST(TokenizerErrors, UnsupportedPiecesAreNamed) {
    const auto expect_error = [](nlohmann::json root, const std::string& needle) {
        const TempFile file("unsupported.json", root.dump());
        try {
            Tokenizer::from_hf(file.path());
            ADD_FAILURE() << "expected Error mentioning " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    const nlohmann::json base = nlohmann::json::parse(tiny_tokenizer_json(byte_level_only(), nlohmann::json::array()));
    nlohmann::json root = base;
    root["normalizer"] = {{"type", "Lowercase"}};
    expect_error(root, "Lowercase");
    root = base;
    root["pre_tokenizer"] = {{"type", "Metaspace"}};
    expect_error(root, "Metaspace");
    root = base;
    root["pre_tokenizer"] = split_then_byte_level("(", "Isolated", false);
    expect_error(root, "does not compile");
    root = base;
    root["model"]["merges"] = {"a zz"};
    expect_error(root, "merge 0");
    root = base;
    root["model"]["vocab"].erase("a");
    expect_error(root, "no byte-level token for 'a'");
    root = base;
    root["pre_tokenizer"] = split_then_byte_level("-", "Sideways", false);
    expect_error(root, "Sideways");
}

}  // namespace
}  // namespace kindred::text
