// The real Gemma 3 vocabulary (SentencePiece BPE, 262k pieces) against the tokenizer transformers
// builds from the same GGUF (tools/goldens/gemma3_tokenizer.py -> tests/goldens/tokenizer/gemma3.json):
// ids equal for every case, with control tokens parsed and as text; decode gives the text back (but a
// literal "▁", which reads as a space); spans tile the text; streaming decode equals whole decode.
// Twice: read from the GGUF's metadata (pieces joined by score), and from Gemma 3's tokenizer.json
// (BPE with byte_fallback and 515k ranked merges) that tools/goldens/gemma3_tokenizer_json.py saves from
// transformers and checks against the same goldens. Each is skipped when its file is absent (Gemma 3
// 270M: scripts/fetch-gemma3-270m; the tokenizer.json is ~33 MB, made locally rather than committed).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/paths.h"
#include "formats/gguf.h"
#include "golden_cases.h"
#include "test_paths.h"
#include "text/tokenizer.h"

namespace kindred::text {
namespace {

const std::string kTokenizerDir = "/models/gemma-3-270m-tokenizer";

class Gemma3Tokenizer : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() {
        std::ifstream in(testing::source_path("tests/goldens/tokenizer/gemma3.json"), std::ios::binary);
        golden_ = new nlohmann::json(nlohmann::json::parse(in));
    }
    static void TearDownTestSuite() {
        delete gguf_;
        delete json_;
        delete golden_;
    }
    void SetUp() override {
        if (GetParam() == "gguf") {
            const std::string path = kindred_home() + "/models/" + kGemma3_270mFile;
            if (!std::filesystem::exists(path)) GTEST_SKIP() << "Gemma 3 270M not fetched (scripts/fetch-gemma3-270m)";
            if (gguf_ == nullptr) {
                const gguf::File file = gguf::File::open(path);
                gguf_ = new Tokenizer(Tokenizer::from_gguf(file.metadata(), file.name()));
            }
            tokenizer_ = gguf_;
        } else {
            const std::string path = kindred_home() + kTokenizerDir + "/tokenizer.json";
            if (!std::filesystem::exists(path)) {
                GTEST_SKIP() << path << " not made (scripts/fetch-gemma3-270m, then "
                             << ".venv/bin/python tools/goldens/gemma3_tokenizer_json.py)";
            }
            if (json_ == nullptr) {
                json_ = new Tokenizer(Tokenizer::from_hf(path, kindred_home() + kTokenizerDir + "/tokenizer_config.json"));
            }
            tokenizer_ = json_;
        }
    }
    static inline Tokenizer* gguf_ = nullptr;
    static inline Tokenizer* json_ = nullptr;
    static inline nlohmann::json* golden_ = nullptr;
    const Tokenizer* tokenizer_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Sources, Gemma3Tokenizer, ::testing::Values("gguf", "tokenizer_json"));

TEST_P(Gemma3Tokenizer, IdsMatchTransformers) {
    EXPECT_EQ(tokenizer_->vocab_size(), (*golden_)["vocab_size"].get<std::size_t>());
    EXPECT_EQ(tokenizer_->bos_id(), (*golden_)["bos_id"].get<std::int32_t>());
    EXPECT_EQ(tokenizer_->eos_id(), (*golden_)["eos_id"].get<std::int32_t>());
    const std::size_t checked = testing::expect_golden_cases(*tokenizer_, (*golden_)["cases"], "transformers", false);
    EXPECT_GT(checked, 900u);
}

TEST_P(Gemma3Tokenizer, DecodeSpansAndStreamingGiveTheTextBack) {
    for (const auto& c : (*golden_)["cases"]) {
        const std::string text = c["text"].get<std::string>();
        // A literal "▁" is read as the space it stands for (transformers decodes it so too).
        if (text.find("\xE2\x96\x81") != std::string::npos) continue;
        const Encoding e = tokenizer_->encode_with_spans(text);
        ASSERT_EQ(tokenizer_->decode(e.ids), text);
        std::size_t at = 0;
        for (const auto& [begin, end] : e.spans) {
            ASSERT_EQ(begin, at) << text;
            at = end;
        }
        ASSERT_EQ(at, text.size()) << text;
        StreamingDecoder stream(*tokenizer_);
        std::string streamed;
        for (const std::int32_t id : e.ids) streamed += stream.push(id);
        streamed += stream.finish();
        ASSERT_EQ(streamed, text);
    }
}

}  // namespace
}  // namespace kindred::text
