// Hostile tokenizer.json / tokenizer_config.json: every file of tests/corpus/tokenizer-malformed
// (hand-made cases and inputs the fuzzer once crashed or hung on) must yield Error naming the
// source and holding the phrase EXPECTED.json gives for it. A file holds tokenizer.json and,
// after a "\n\x01\n" line, tokenizer_config.json: the layout fuzz/fuzz_tokenizer_json.cpp uses,
// so that a crasher drops into the corpus unchanged.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "malformed_corpus.h"
#include "test_paths.h"
#include "text/tokenizer.h"

namespace kindred::text {
namespace {

TEST(TokenizerCorpus, EveryMalformedFileYieldsErrorWithItsPhrase) {
    testing::expect_every_corpus_file_refused(
        testing::source_path("tests/corpus/tokenizer-malformed"),
        [](const std::filesystem::path& file, const std::string& name) {
            const std::string input = testing::read_corpus_bytes(file);
            constexpr std::string_view kSeparator = "\n\x01\n";
            std::string_view json = input;
            std::optional<std::string_view> config;
            if (const std::size_t at = json.find(kSeparator); at != std::string_view::npos) {
                config = json.substr(at + kSeparator.size());
                json = json.substr(0, at);
            }
            Tokenizer::from_hf_json(json, config, name);
        });
}

}  // namespace
}  // namespace kindred::text
