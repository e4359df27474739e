// Hostile tokenizer.json / tokenizer_config.json: every file of tests/corpus/tokenizer-malformed
// (hand-made cases and inputs the fuzzer once crashed or hung on) must yield Error naming the
// source and holding the phrase EXPECTED.json gives for it. A file holds tokenizer.json and,
// after a "\n\x01\n" line, tokenizer_config.json: the layout fuzz/fuzz_tokenizer_json.cpp uses,
// so that a crasher drops into the corpus unchanged.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer.h"
#include "test_paths.h"

namespace kindred::text {
namespace {

std::string read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(TokenizerCorpus, EveryMalformedFileYieldsErrorWithItsPhrase) {
    const std::filesystem::path folder = testing::source_path("tests/corpus/tokenizer-malformed");
    const nlohmann::json expected = nlohmann::json::parse(read_bytes(folder / "EXPECTED.json"));
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        if (name == "EXPECTED.json") continue;
        ++files;
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "add its phrase to EXPECTED.json";
        const std::string input = read_bytes(entry.path());
        constexpr std::string_view kSeparator = "\n\x01\n";
        std::string_view json = input;
        std::optional<std::string_view> config;
        if (const std::size_t at = json.find(kSeparator); at != std::string_view::npos) {
            config = json.substr(at + kSeparator.size());
            json = json.substr(0, at);
        }
        try {
            Tokenizer::from_hf_json(json, config, name);
            ADD_FAILURE() << "accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find(name), std::string::npos) << message;
            EXPECT_NE(message.find(expected[name].get<std::string>()), std::string::npos) << message;
        }
    }
    EXPECT_EQ(files, expected.size());
}

}  // namespace
}  // namespace kindred::text
