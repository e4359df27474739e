// TextStream driven by a scripted token source over a tiny byte-level vocabulary (one token per
// byte, plus a few multi-byte tokens), so no model is needed: characters split across tokens are
// never shown half, stop strings split across tokens are never shown at all.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "infer/text_stream.h"
#include "text/tokenizer.h"

namespace kindred::infer {
namespace {

// GPT-2's byte-to-character map: printable bytes stand for themselves, the rest for U+0100 + n.
std::string byte_level_text(unsigned char byte) {
    static const std::vector<std::string> table = [] {
        std::vector<std::string> texts(256);
        int next = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            const int code = printable ? b : 256 + next++;
            std::string utf8;
            if (code < 0x80) {
                utf8 += static_cast<char>(code);
            } else {
                utf8 += static_cast<char>(0xC0 | (code >> 6));
                utf8 += static_cast<char>(0x80 | (code & 0x3F));
            }
            texts[static_cast<std::size_t>(b)] = utf8;
        }
        return texts;
    }();
    return table[byte];
}

std::string byte_level(std::string_view bytes) {
    std::string text;
    for (const char c : bytes) text += byte_level_text(static_cast<unsigned char>(c));
    return text;
}

// Ids 0-255 are the single bytes; the extras follow.
const std::vector<std::string> kExtraTokens = {
    "\xC3\xA9",          // 256: "é" whole
    "<|im",              // 257
    "_end",              // 258
    "|>",                // 259
    "\xE2\x80",          // 260: first two bytes of "—" (U+2014)
    "\x94 ok",           // 261: its last byte, then " ok"
};

text::Tokenizer byte_tokenizer() {
    std::vector<gguf::Value> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back({byte_level_text(static_cast<unsigned char>(b))});
    for (const auto& extra : kExtraTokens) tokens.push_back({byte_level(extra)});
    gguf::Metadata metadata;
    metadata.set("tokenizer.ggml.model", {std::string("gpt2")});
    metadata.set("tokenizer.ggml.pre", {std::string("gpt-2")});
    metadata.set("tokenizer.ggml.tokens", {gguf::Array{gguf::ValueType::String, tokens}});
    metadata.set("tokenizer.ggml.merges", {gguf::Array{gguf::ValueType::String, {}}});
    return text::Tokenizer::from_gguf(metadata);
}

std::vector<std::int32_t> bytes_as_ids(std::string_view bytes) {
    std::vector<std::int32_t> ids;
    for (const char c : bytes) ids.push_back(static_cast<unsigned char>(c));
    return ids;
}

// Every piece pushed out, and whether each is whole UTF-8.
struct Streamed {
    std::vector<std::string> pieces;
    std::string text;
    bool stopped = false;
};

bool is_whole_utf8(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<unsigned char>(s[i]);
        const std::size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
        if (length == 0 || i + length > s.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        }
        i += length;
    }
    return true;
}

Streamed run(const text::Tokenizer& tokenizer, const std::vector<std::int32_t>& ids, std::vector<std::string> stops) {
    TextStream stream(tokenizer, std::move(stops));
    Streamed out;
    for (const std::int32_t id : ids) {
        out.pieces.push_back(stream.push(id));
        if (stream.stopped()) break;
    }
    out.stopped = stream.stopped();
    out.pieces.push_back(stream.finish());
    for (const auto& piece : out.pieces) out.text += piece;
    return out;
}

class TextStreamTest : public ::testing::Test {
protected:
    text::Tokenizer tokenizer = byte_tokenizer();
};

TEST_F(TextStreamTest, CharacterSplitAcrossTokensIsShownWhole) {
    // "café—ok" with é and — each split over single-byte tokens.
    const auto ids = bytes_as_ids("caf\xC3\xA9\xE2\x80\x94ok");
    const Streamed out = run(tokenizer, ids, {});
    EXPECT_EQ(out.text, "caf\xC3\xA9\xE2\x80\x94ok");
    for (const auto& piece : out.pieces) EXPECT_TRUE(is_whole_utf8(piece)) << piece;
    // The piece after the lead byte 0xC3 is empty; the next one carries the whole "é".
    EXPECT_EQ(out.pieces[3], "");
    EXPECT_EQ(out.pieces[4], "\xC3\xA9");
    EXPECT_EQ(out.pieces[5], "");
    EXPECT_EQ(out.pieces[6], "");
    EXPECT_EQ(out.pieces[7], "\xE2\x80\x94");
}

TEST_F(TextStreamTest, MultiByteTokenSplittingACharacter) {
    // Token 260 ends mid-character, token 261 completes it and adds text.
    const Streamed out = run(tokenizer, {'a', 260, 261}, {});
    EXPECT_EQ(out.pieces, (std::vector<std::string>{"a", "", "\xE2\x80\x94 ok", ""}));
}

TEST_F(TextStreamTest, StopStringSplitAcrossTokensIsNeverShown) {
    std::vector<std::int32_t> ids = bytes_as_ids("Hi ");
    ids.insert(ids.end(), {257, 258, 259});  // "<|im" "_end" "|>"
    ids.push_back('x');
    const Streamed out = run(tokenizer, ids, {"<|im_end|>"});
    EXPECT_TRUE(out.stopped);
    EXPECT_EQ(out.text, "Hi ");
    for (const auto& piece : out.pieces) EXPECT_EQ(piece.find('<'), std::string::npos) << piece;
}

TEST_F(TextStreamTest, StopStringStartingWithASplitCharacter) {
    // Stop "—END": its em dash arrives as 0xE2 0x80 (token 260) then 0x94 (byte token).
    std::vector<std::int32_t> ids = {'o', 'k', 260, 0x94, 'E', 'N', 'D', '!'};
    const Streamed out = run(tokenizer, ids, {"\xE2\x80\x94" "END"});
    EXPECT_TRUE(out.stopped);
    EXPECT_EQ(out.text, "ok");
}

TEST_F(TextStreamTest, HeldBackPrefixIsReleasedWhenGenerationEnds) {
    const Streamed out = run(tokenizer, {'a', 257}, {"<|im_end|>"});
    EXPECT_FALSE(out.stopped);
    EXPECT_EQ(out.pieces, (std::vector<std::string>{"a", "", "<|im"}));
}

TEST_F(TextStreamTest, UnfinishedCharacterAtTheEndBecomesOneReplacement) {
    // Python: b"a\xe2\x80".decode("utf-8", "replace") == "a\ufffd".
    const Streamed out = run(tokenizer, {'a', 260}, {});
    EXPECT_EQ(out.text, "a\xEF\xBF\xBD");
}

TEST_F(TextStreamTest, StrayBytesBecomeReplacements) {
    // A lone continuation byte and a byte that is never valid (0xFF): each becomes U+FFFD.
    const Streamed out = run(tokenizer, {'a', 0x80, 'b', 0xFF, 'c'}, {});
    EXPECT_EQ(out.text, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c");
    for (const auto& piece : out.pieces) EXPECT_TRUE(is_whole_utf8(piece)) << piece;
}

}  // namespace
}  // namespace kindred::infer
