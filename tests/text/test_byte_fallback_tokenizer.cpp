// tokenizer.json with SentencePiece-style BPE (model.byte_fallback true) against the `tokenizers`
// package (tools/goldens/byte_fallback_tokenizer.py -> tests/goldens/tokenizer/byte_fallback/): a small
// vocabulary trained on the tokenizer corpus, in the four ways such files spell "▁" spaces (Gemma's
// Replace normalizer; Llama 2's Prepend + Replace with a Strip decoder; a Metaspace pre-tokenizer
// prepending at the start only, or always and splitting, with ignore_merges). Exact equality of ids
// (control tokens parsed and as text) and of decoded text; spans tile the input; streaming decode
// equals decode and holds back a character whose <0xXX> byte pieces arrive one by one. The real
// Gemma 3 tokenizer.json: test_gemma3_tokenizer.cpp. Refusals: tests/corpus/tokenizer-malformed.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden_cases.h"
#include "test_paths.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace kindred::text {
namespace {

using Ids = std::vector<std::int32_t>;

nlohmann::json read_json(const std::string& relative) {
    std::ifstream in(testing::source_path(relative), std::ios::binary);
    return nlohmann::json::parse(in);
}

const nlohmann::json& goldens() {
    static const nlohmann::json golden = read_json("tests/goldens/tokenizer/byte_fallback/goldens.json");
    return golden;
}

// The fixture's tokenizer.json with one variant's normalizer, pre-tokenizer, decoder and ignore_merges.
Tokenizer variant(const std::string& name) {
    nlohmann::json json = read_json("tests/goldens/tokenizer/byte_fallback/tiny-gemma3/tokenizer.json");
    const nlohmann::json& fields = goldens()["variants"][name]["fields"];
    for (const char* key : {"normalizer", "pre_tokenizer", "decoder"}) json[key] = fields[key];
    json["model"]["ignore_merges"] = fields.value("ignore_merges", false);
    return Tokenizer::from_hf_json(json.dump(), std::nullopt, name + ".json");
}

class ByteFallbackVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(ByteFallbackVariant, IdsAndDecodedTextMatchTokenizers) {
    const Tokenizer tokenizer = variant(GetParam());
    EXPECT_EQ(tokenizer.vocab_size(), goldens()["vocab_size"].get<std::size_t>());
    const std::size_t checked =
        testing::expect_golden_cases(tokenizer, goldens()["variants"][GetParam()]["cases"], "tokenizers", true);
    EXPECT_GT(checked, 140u);
}

TEST_P(ByteFallbackVariant, SpansTileTheTextAndStreamingEqualsDecode) {
    const Tokenizer tokenizer = variant(GetParam());
    for (const auto& c : goldens()["variants"][GetParam()]["cases"]) {
        const std::string text = c["text"].get<std::string>();
        const Encoding e = tokenizer.encode_with_spans(text);
        // A prepended "▁" alone covers no input byte: its span is empty, the tiling unbroken.
        std::size_t at = 0;
        for (const auto& [begin, end] : e.spans) {
            ASSERT_EQ(begin, at) << text;
            at = end;
        }
        ASSERT_EQ(at, text.size()) << text;
        StreamingDecoder stream(tokenizer);
        std::string streamed;
        for (const std::int32_t id : e.ids) streamed += stream.push(id);
        streamed += stream.finish();
        ASSERT_EQ(streamed, tokenizer.decode(e.ids)) << text;
    }
}

INSTANTIATE_TEST_SUITE_P(Goldens, ByteFallbackVariant,
                         ::testing::Values("gemma", "llama2", "metaspace_first", "metaspace_split"));

TEST(ByteFallbackTokenizer, GemmaStyleDecodesEncodeBackToTheText) {
    const Tokenizer tokenizer = variant("gemma");
    std::size_t checked = 0;
    for (const auto& c : goldens()["variants"]["gemma"]["cases"]) {
        const std::string text = c["text"].get<std::string>();
        if (text.find("\xE2\x96\x81") != std::string::npos) continue;  // a literal "▁" reads as a space
        ASSERT_EQ(tokenizer.decode(tokenizer.encode(text)), text);
        ASSERT_EQ(tokenizer.decode(tokenizer.encode(text, false)), text);
        ++checked;
    }
    EXPECT_GT(checked, 140u);
}

TEST(ByteFallbackTokenizer, StreamingHoldsBackACharacterSplitIntoBytePieces) {
    const Tokenizer tokenizer = variant("gemma");
    const std::string text = "ok \xF0\x9F\x98\x80 \xE4\xB8\xAD!";  // 😀 and 中: not in the fixture's alphabet
    const Ids ids = tokenizer.encode(text);
    std::size_t byte_pieces = 0;
    StreamingDecoder stream(tokenizer);
    std::string streamed;
    for (const std::int32_t id : ids) {
        const std::string_view piece = tokenizer.token_text(id);
        if (piece.size() == 6 && piece.starts_with("<0x")) ++byte_pieces;
        const std::string out = stream.push(id);
        EXPECT_TRUE(utf8_is_complete(out)) << nlohmann::json(tokenizer.token_text(id)).dump();
        streamed += out;
    }
    EXPECT_EQ(byte_pieces, 7u);  // 4 bytes of 😀, 3 of 中
    EXPECT_EQ(streamed + stream.finish(), text);
}

TEST(ByteFallbackTokenizer, PrependedSpaceIsStrippedOnceAndOnlyAtTheStart) {
    const Tokenizer tokenizer = variant("llama2");
    EXPECT_EQ(tokenizer.decode_strip(), 1u);
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("Hello world")), "Hello world");
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("  two")), "  two");  // "▁▁▁two" less one space
    const Encoding e = tokenizer.encode_with_spans("Hello");
    ASSERT_FALSE(e.spans.empty());
    EXPECT_EQ(e.spans.front().first, 0u);
    EXPECT_NE(tokenizer.summary().find("U+2581 prepended"), std::string::npos) << tokenizer.summary();
}

TEST(ByteFallbackTokenizer, FuzzSeedLoadsAndEncodesInvalidUtf8AsBytePieces) {
    std::ifstream in(testing::source_path("tests/goldens/tokenizer/byte_fallback/fuzz_seed.json"), std::ios::binary);
    const std::string json{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const Tokenizer tokenizer = Tokenizer::from_hf_json(json);
    // The prepended "▁" and "ab" are one piece (merges a+b, then ▁+ab); 0xFF and the truncated "é"
    // are byte pieces; decode strips the prepended space again.
    const std::string text = "ab\xFF \xC3";
    const Ids ids = tokenizer.encode(text);
    ASSERT_EQ(ids.size(), 4u);
    EXPECT_EQ(tokenizer.token_text(ids[0]), "\xE2\x96\x81" "ab");
    EXPECT_EQ(tokenizer.token_text(ids[1]), "<0xFF>");
    EXPECT_EQ(tokenizer.token_text(ids[2]), "\xE2\x96\x81");
    EXPECT_EQ(tokenizer.token_text(ids[3]), "<0xC3>");
    EXPECT_EQ(tokenizer.decode(ids), text);
}

TEST(ByteFallbackTokenizer, SummaryNamesTheMergesAndByteFallback) {
    const std::string summary = variant("gemma").summary();
    EXPECT_NE(summary.find("SentencePiece BPE"), std::string::npos) << summary;
    EXPECT_NE(summary.find(std::to_string(goldens()["merges"].get<int>()) + " merges"), std::string::npos) << summary;
    EXPECT_NE(summary.find("byte fallback"), std::string::npos) << summary;
}

}  // namespace
}  // namespace kindred::text
