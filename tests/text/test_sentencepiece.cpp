// SentencePiece BPE (GGUF tokenizer.ggml.model "llama") on a hand-made vocabulary: merges by score
// (leftmost on ties, re-examined after every join), "▁" for spaces both ways, byte fallback with
// spans and streaming decode, control tokens only where allowed, user-defined tokens always, and the
// metadata the loader refuses. The real Gemma 3 vocabulary against transformers:
// test_gemma3_tokenizer.cpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "malformed_corpus.h"
#include "test_paths.h"
#include "text/tokenizer.h"

namespace kindred::text {
namespace {

using Ids = std::vector<std::int32_t>;

constexpr std::int64_t kNormal = 1, kControl = 3, kUserDefined = 4, kByte = 6;

struct Piece {
    std::string text;
    float score;
    std::int64_t type;
};

// ids 0..5 control / user-defined, 6..261 the byte pieces <0x00>..<0xFF>, then the pieces below.
const std::vector<Piece> kNormalPieces = {
    {"\xE2\x96\x81", -1.0f, kNormal},          // 262 ▁
    {"a", -2.0f, kNormal},                     // 263
    {"b", -3.0f, kNormal},                     // 264
    {"c", -4.0f, kNormal},                     // 265
    {"h", -5.0f, kNormal},                     // 266
    {"i", -6.0f, kNormal},                     // 267
    {"ab", -10.0f, kNormal},                   // 268
    {"bc", -11.0f, kNormal},                   // 269
    {"aa", -12.0f, kNormal},                   // 270
    {"hi", -13.0f, kNormal},                   // 271
    {"\xE2\x96\x81h", -14.0f, kNormal},        // 272 ▁h: lower than "hi", so " hi" joins h+i first
    {"\xE2\x96\x81hi", -15.0f, kNormal},       // 273 ▁hi
};

gguf::Metadata vocabulary(std::vector<Piece> extra = {}) {
    std::vector<Piece> pieces = {{"<pad>", 0, kControl},         {"<eos>", 0, kControl},
                                 {"<bos>", 0, kControl},         {"<start_of_turn>", 0, kControl},
                                 {"<end_of_turn>", 0, kControl}, {"\n", 0, kUserDefined}};
    for (int b = 0; b < 256; ++b) {
        char text[8];
        std::snprintf(text, sizeof text, "<0x%02X>", b);
        pieces.push_back({text, 0.0f, kByte});
    }
    pieces.insert(pieces.end(), kNormalPieces.begin(), kNormalPieces.end());
    pieces.insert(pieces.end(), extra.begin(), extra.end());
    gguf::Array tokens{gguf::ValueType::String, {}}, scores{gguf::ValueType::Float32, {}},
        types{gguf::ValueType::Int32, {}};
    for (const Piece& p : pieces) {
        tokens.items.push_back(gguf::Value{p.text});
        scores.items.push_back(gguf::Value{p.score});
        types.items.push_back(gguf::Value{static_cast<std::int32_t>(p.type)});
    }
    gguf::Metadata m;
    m.set("tokenizer.ggml.model", gguf::Value{std::string("llama")});
    m.set("tokenizer.ggml.tokens", gguf::Value{tokens});
    m.set("tokenizer.ggml.scores", gguf::Value{scores});
    m.set("tokenizer.ggml.token_type", gguf::Value{types});
    m.set("tokenizer.ggml.add_space_prefix", gguf::Value{false});
    m.set("tokenizer.ggml.bos_token_id", gguf::Value{std::uint32_t{2}});
    m.set("tokenizer.ggml.eos_token_id", gguf::Value{std::uint32_t{1}});
    return m;
}

const Tokenizer& tiny() {
    static const Tokenizer tokenizer = Tokenizer::from_gguf(vocabulary(), "tiny.gguf");
    return tokenizer;
}

constexpr std::int32_t kBytes = 6;  // id of <0x00>

TEST(SentencePiece, JoinsTheHighestScoringPairFirst) {
    EXPECT_EQ(tiny().encode("abc"), (Ids{268, 265}));  // ab (-10) beats bc (-11)
    EXPECT_EQ(tiny().encode("bc"), (Ids{269}));
    EXPECT_EQ(tiny().encode("aaa"), (Ids{270, 263}));  // equal scores: the leftmost pair
    // " hi": h+i (-13) first, then ▁+hi (-15), although ▁+h (-14) scored higher at the start.
    EXPECT_EQ(tiny().encode(" hi"), (Ids{273}));
    EXPECT_EQ(tiny().encode("a  b"), (Ids{263, 262, 262, 264}));
    EXPECT_EQ(tiny().encode(""), Ids{});
}

// Gemma's space runs are user-defined tokens spelled with spaces; like transformers, Kindred merges
// them as "▁▁..." pieces ranked above every scored piece, shorter runs first.
TEST(SentencePiece, SpaceRunTokensMergeFirstShorterRunsBeforeLonger) {
    const Tokenizer t = Tokenizer::from_gguf(
        vocabulary({{"  ", -1000.0f, kUserDefined}, {"   ", -1000.0f, kUserDefined}, {"    ", -1000.0f, kUserDefined}}));
    EXPECT_EQ(t.encode("a  b"), (Ids{263, 274, 264}));
    EXPECT_EQ(t.encode("a     b"), (Ids{263, 274, 275, 264}));  // ▁▁ ▁▁ ▁ -> ▁▁ ▁▁▁ (3 ranks above 4)
    EXPECT_EQ(t.encode("    "), (Ids{276}));
    EXPECT_EQ(t.token_text(274), "\xE2\x96\x81\xE2\x96\x81");
    EXPECT_EQ(t.decode(Ids{275}), "   ");
    EXPECT_FALSE(t.is_special(274));
}

TEST(SentencePiece, FallsBackToBytesWithSpansAndDecodesThem) {
    const Encoding e = tiny().encode_with_spans("h\xC3\xA9!");  // é and ! have no piece
    EXPECT_EQ(e.ids, (Ids{266, kBytes + 0xC3, kBytes + 0xA9, kBytes + '!'}));
    EXPECT_EQ(e.spans, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
    EXPECT_EQ(e.dropped_bytes, 0u);
    EXPECT_EQ(tiny().decode(e.ids), "h\xC3\xA9!");
    // Spans of a piece holding "▁" cover the one space it stands for.
    const Encoding spaced = tiny().encode_with_spans("ab hi");
    EXPECT_EQ(spaced.ids, (Ids{268, 273}));
    EXPECT_EQ(spaced.spans, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 2}, {2, 5}}));
    EXPECT_EQ(tiny().decode(spaced.ids), "ab hi");
    EXPECT_EQ(tiny().token_bytes(262), " ");
    EXPECT_EQ(tiny().token_text(262), "\xE2\x96\x81");
}

TEST(SentencePiece, StreamingHoldsBackPartialCharacters) {
    StreamingDecoder stream(tiny());
    EXPECT_EQ(stream.push(266), "h");
    EXPECT_EQ(stream.push(kBytes + 0xC3), "");
    EXPECT_EQ(stream.push(kBytes + 0xA9), "\xC3\xA9");
    EXPECT_EQ(stream.push(kBytes + 0xFF), "\xFF");  // can never become UTF-8: passed through
    EXPECT_EQ(stream.finish(), "");
}

TEST(SentencePiece, ControlTokensOnlyWhereAllowedUserDefinedAlways) {
    EXPECT_EQ(tiny().encode("<start_of_turn>hi\n"), (Ids{3, 271, 5}));
    // As text, a control token's spelling never merges into the control token.
    const Ids as_text = tiny().encode("<eos>", false);
    EXPECT_EQ(as_text.size(), 5u);
    EXPECT_EQ(tiny().decode(as_text), "<eos>");
    EXPECT_EQ(tiny().encode("a\nb", false), (Ids{263, 5, 264}));
    const std::string chat = "<start_of_turn>user says <end_of_turn>";
    const std::vector<std::pair<std::size_t, std::size_t>> markup = {{0, 15}};
    const Encoding e = tiny().encode_with_markup(chat, markup);
    EXPECT_EQ(e.ids.front(), 3);
    EXPECT_NE(e.ids.back(), 4);  // "<end_of_turn>" outside the markup stays text
    EXPECT_EQ(tiny().decode(e.ids), chat);
    EXPECT_TRUE(tiny().is_special(4));
    EXPECT_FALSE(tiny().is_special(5));
    EXPECT_EQ(tiny().bos_id(), 2);
    EXPECT_NE(tiny().summary().find("SentencePiece"), std::string::npos);
}

TEST(SentencePiece, RefusesMetadataItCannotHonour) {
    const auto expect_error = [](const gguf::Metadata& m, const std::string& needle) {
        try {
            Tokenizer::from_gguf(m, "bad.gguf");
            ADD_FAILURE() << "expected Error mentioning " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("bad.gguf"), std::string::npos) << e.what();
        }
    };
    gguf::Metadata prefix = vocabulary();
    prefix.set("tokenizer.ggml.add_space_prefix", gguf::Value{true});
    expect_error(prefix, "add_space_prefix");
    gguf::Metadata nan = vocabulary({{"zz", std::numeric_limits<float>::quiet_NaN(), kNormal}});
    expect_error(nan, "scores[274]");
    gguf::Metadata bad_type = vocabulary({{"zz", 0.0f, 9}});
    expect_error(bad_type, "token_type[274]");
    gguf::Metadata bad_byte = vocabulary({{"<0xZZ>", 0.0f, kByte}});
    expect_error(bad_byte, "tokens[274]");
    gguf::Metadata repeated_byte = vocabulary({{"<0x41>", 0.0f, kByte}});
    expect_error(repeated_byte, "repeats the byte piece");
    gguf::Metadata short_scores = vocabulary();
    short_scores.set("tokenizer.ggml.scores", gguf::Value{gguf::Array{gguf::ValueType::Float32, {gguf::Value{1.0f}}}});
    expect_error(short_scores, "tokenizer.ggml.scores has 1 entries");
    gguf::Metadata no_types = vocabulary();
    no_types.set("tokenizer.ggml.token_type", gguf::Value{gguf::Array{gguf::ValueType::Int32, {}}});
    expect_error(no_types, "token_type has 0 entries");
}

// tests/corpus/gguf-tokenizer-malformed (tools/make_malformed_gguf_tokenizer.py): valid GGUF containers
// whose SentencePiece metadata is refused naming the file and the key; the well-formed file they all
// break loads.
TEST(SentencePieceCorpus, EveryMalformedFileIsRefusedAndTheValidBaseLoads) {
    const gguf::File valid = gguf::File::open(testing::source_path("tests/goldens/tokenizer/tiny_sentencepiece.gguf"));
    const Tokenizer base = Tokenizer::from_gguf(valid.metadata(), valid.name());
    EXPECT_EQ(base.decode(base.encode("<start_of_turn>ab hi\n\x01")), "<start_of_turn>ab hi\n\x01");
    testing::expect_every_corpus_file_refused(
        testing::source_path("tests/corpus/gguf-tokenizer-malformed"), [](const std::filesystem::path& path, const std::string&) {
            const gguf::File file = gguf::File::open(path.string());
            Tokenizer::from_gguf(file.metadata(), file.name());
        });
}

}  // namespace
}  // namespace kindred::text
