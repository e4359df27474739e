// SmolLM2's tokenizer, read from the default GGUF, against the Python `tokenizers` ids for
// the ~1.3 MB corpus of tools/goldens/tokenizer.py (tests/goldens/tokenizer/).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_paths.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace kindred::text {
namespace {

using testing::source_path;

const Tokenizer& smollm2() {
    static const Tokenizer tokenizer = [] {
        const gguf::File file = gguf::File::open(kindred::testing::default_model_path());
        return Tokenizer::from_gguf(file.metadata());
    }();
    return tokenizer;
}

struct Line {
    std::string kind;
    std::string text;
    std::vector<std::int32_t> ids;        // parse_special = true
    std::vector<std::int32_t> plain_ids;  // parse_special = false (lines with special strings)
    bool special = false;
};

const std::vector<Line>& corpus() {
    static const std::vector<Line> lines = [] {
        std::vector<Line> result;
        std::ifstream text(source_path("tests/goldens/tokenizer/corpus.jsonl"));
        std::ifstream ids_file(source_path("tests/goldens/tokenizer/ids.bin"), std::ios::binary);
        if (!text || !ids_file) throw Error("tokenizer goldens missing: run tools/goldens/tokenizer.py");
        const std::vector<char> raw((std::istreambuf_iterator<char>(ids_file)), std::istreambuf_iterator<char>());
        std::size_t at = 0;
        const auto next_record = [&] {
            std::int32_t count = 0;
            if (at + 4 > raw.size()) throw Error("ids.bin ends early");
            std::memcpy(&count, raw.data() + at, 4);
            at += 4;
            if (count < 0 || at + 4 * static_cast<std::size_t>(count) > raw.size()) throw Error("ids.bin record overruns");
            std::vector<std::int32_t> ids(static_cast<std::size_t>(count));
            std::memcpy(ids.data(), raw.data() + at, 4 * ids.size());
            at += 4 * ids.size();
            return ids;
        };
        for (std::string json; std::getline(text, json);) {
            const nlohmann::json entry = nlohmann::json::parse(json);
            Line line{entry.at("kind").get<std::string>(), entry.at("text").get<std::string>(), next_record(), {},
                      entry.at("special").get<bool>()};
            if (line.special) line.plain_ids = next_record();
            result.push_back(std::move(line));
        }
        if (at != raw.size()) throw Error("ids.bin has trailing records");
        return result;
    }();
    return lines;
}

// The text without the bytes SmolLM2's vocabulary has no token for (HF drops them too).
std::string without_dropped(const Tokenizer& t, std::string_view text) {
    std::string out;
    for (const char c : text) {
        const std::string byte(1, c);
        // A byte is encodable when encoding it alone yields a token.
        if (!t.encode_with_spans(byte, false).ids.empty()) out.push_back(c);
    }
    return out;
}

TEST(TokenizerGolden, CorpusIsLargeAndVaried) {
    std::size_t bytes = 0;
    std::vector<std::string> kinds;
    for (const Line& line : corpus()) {
        bytes += line.text.size();
        if (std::find(kinds.begin(), kinds.end(), line.kind) == kinds.end()) kinds.push_back(line.kind);
    }
    EXPECT_GE(bytes, 1'000'000u);
    EXPECT_GE(kinds.size(), 9u);
}

TEST(TokenizerGolden, IdsMatchPythonTokenizersLineByLine) {
    const Tokenizer& t = smollm2();
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < corpus().size(); ++i) {
        const Line& line = corpus()[i];
        const std::vector<std::int32_t> ids = t.encode(line.text);
        if (ids != line.ids) {
            ++mismatches;
            ADD_FAILURE() << "line " << i + 1 << " (" << line.kind << ") differs: " << line.text.substr(0, 200);
        }
        if (line.special && t.encode(line.text, false) != line.plain_ids) {
            ++mismatches;
            ADD_FAILURE() << "line " << i + 1 << " with parse_special=false differs: " << line.text.substr(0, 200);
        }
        ASSERT_LT(mismatches, 10u) << "stopping after 10 mismatching lines";
    }
}

TEST(TokenizerGolden, DecodeOfEncodeGivesTheTextBack) {
    const Tokenizer& t = smollm2();
    std::string whole;
    for (const Line& line : corpus()) {
        whole += line.text;
        whole += '\n';
    }
    // One call over the whole corpus (also exercises long inputs); only bytes the
    // vocabulary lacks go missing, and the encoding counts them.
    const Encoding e = t.encode_with_spans(whole);
    const std::string expected = without_dropped(t, whole);
    EXPECT_EQ(t.decode(e.ids), expected);
    EXPECT_EQ(e.dropped_bytes, whole.size() - expected.size());
    EXPECT_GT(e.dropped_bytes, 0u) << "the corpus should exercise bytes the vocabulary lacks";
}

TEST(TokenizerGolden, SpansAreTheBytesEachTokenEncodes) {
    const Tokenizer& t = smollm2();
    for (std::size_t i = 0; i < corpus().size(); ++i) {
        const Line& line = corpus()[i];
        const Encoding e = t.encode_with_spans(line.text);
        ASSERT_EQ(e.spans.size(), e.ids.size());
        std::size_t cursor = 0;
        for (std::size_t k = 0; k < e.ids.size(); ++k) {
            const auto [begin, end] = e.spans[k];
            ASSERT_GE(begin, cursor) << "line " << i + 1 << " token " << k;
            ASSERT_LE(end, line.text.size());
            ASSERT_EQ(without_dropped(t, std::string_view(line.text).substr(begin, end - begin)), t.token_bytes(e.ids[k]))
                << "line " << i + 1 << " token " << k;
            cursor = end;
        }
    }
}

TEST(TokenizerGolden, StreamingDecodeEqualsWholeDecode) {
    const Tokenizer& t = smollm2();
    for (std::size_t i = 0; i < corpus().size(); ++i) {
        const Line& line = corpus()[i];
        const std::string whole = t.decode(line.ids);
        const bool valid = utf8_is_complete(whole);
        StreamingDecoder decoder(t);
        std::string streamed;
        for (const std::int32_t id : line.ids) {
            const std::string piece = decoder.push(id);
            // A valid text streams as valid pieces: no character is ever cut in two.
            if (valid) {
                ASSERT_TRUE(utf8_is_complete(piece)) << "line " << i + 1;
            }
            streamed += piece;
        }
        streamed += decoder.finish();
        ASSERT_EQ(streamed, whole) << "line " << i + 1;
    }
}

TEST(TokenizerGguf, MetadataOfTheDefaultModel) {
    const Tokenizer& t = smollm2();
    EXPECT_EQ(t.vocab_size(), 49152u);
    EXPECT_EQ(t.bos_id(), 1);
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_EQ(t.find_token("<|im_start|>"), 1);
    EXPECT_TRUE(t.is_special(2));
    EXPECT_FALSE(t.is_special(100));
    EXPECT_NE(t.chat_template().find("<|im_start|>"), std::string::npos);
    EXPECT_NE(t.summary().find("smollm"), std::string::npos) << t.summary();
    EXPECT_EQ(t.encode("Hello <|im_start|>user"), (std::vector<std::int32_t>{19556, 216, 1, 4093}));
}

gguf::Metadata tiny_gguf(const std::string& model, const std::string& pre) {
    gguf::Metadata m;
    m.set("tokenizer.ggml.model", gguf::Value{model});
    m.set("tokenizer.ggml.pre", gguf::Value{pre});
    gguf::Array tokens{gguf::ValueType::String, {}};
    const ByteLevelTable& table = byte_level_table();
    for (std::size_t b = 0; b < 256; ++b) {
        std::string s;
        utf8_append(s, table.byte_to_code_point[b]);
        tokens.items.push_back(gguf::Value{s});
    }
    m.set("tokenizer.ggml.tokens", gguf::Value{tokens});
    m.set("tokenizer.ggml.merges", gguf::Value{gguf::Array{gguf::ValueType::String, {}}});
    return m;
}

TEST(TokenizerGguf, ErrorsNameTheProblem) {
    const auto expect_error = [](const gguf::Metadata& m, const std::string& needle) {
        try {
            Tokenizer::from_gguf(m);
            ADD_FAILURE() << "expected Error mentioning " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    EXPECT_EQ(Tokenizer::from_gguf(tiny_gguf("gpt2", "gpt-2")).encode("hi"), (std::vector<std::int32_t>{'h', 'i'}));
    expect_error(tiny_gguf("t5", "default"), "'t5'");
    expect_error(tiny_gguf("gpt2", "mystery"), "mystery");
    gguf::Metadata bad_bos = tiny_gguf("gpt2", "gpt-2");
    bad_bos.set("tokenizer.ggml.bos_token_id", gguf::Value{std::uint32_t{999999}});
    expect_error(bad_bos, "bos_token_id");
    gguf::Metadata bad_merge = tiny_gguf("gpt2", "gpt-2");
    bad_merge.set("tokenizer.ggml.merges", gguf::Value{gguf::Array{gguf::ValueType::String, {gguf::Value{std::string("ab")}}}});
    expect_error(bad_merge, "merges[0]");
    gguf::Metadata no_tokens;
    no_tokens.set("tokenizer.ggml.model", gguf::Value{std::string("gpt2")});
    no_tokens.set("tokenizer.ggml.pre", gguf::Value{std::string("gpt-2")});
    expect_error(no_tokens, "tokenizer.ggml.tokens");
}

}  // namespace
}  // namespace kindred::text
