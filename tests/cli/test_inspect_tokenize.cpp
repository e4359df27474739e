#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_kindred.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

TEST(InspectCli, DefaultModelReportsSmolLM2Hyperparameters) {
    const CommandResult result = run_kindred("inspect default --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    EXPECT_EQ(report["architecture"], "llama");
    EXPECT_EQ(report["block_count"], 30);
    EXPECT_EQ(report["embedding_length"], 576);
    EXPECT_EQ(report["head_count"], 9);
    EXPECT_EQ(report["head_count_kv"], 3);
    EXPECT_EQ(report["vocab_size"], 49152);
    EXPECT_EQ(report["context_length"], 8192);
    ASSERT_FALSE(report["tensors"].empty());
    // 30 blocks x 9 tensors + token embedding + final norm; the output projection is tied.
    EXPECT_EQ(report["tensors"].size(), 272u);
    const auto& first = report["tensors"][0];
    EXPECT_TRUE(first.contains("name") && first.contains("type") && first.contains("shape"));
}

TEST(InspectCli, MalformedGgufCorpusExitsWithErrorNotSignal) {
    const auto corpus = source_path("tests/corpus/gguf-malformed");
    ASSERT_TRUE(std::filesystem::is_directory(corpus));
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
        const CommandResult result = run_kindred("inspect '" + entry.path().string() + "'", true);
        EXPECT_EQ(result.signal, 0) << entry.path();
        EXPECT_EQ(result.exit_code, 1) << entry.path() << ": " << result.output;
        EXPECT_NE(result.output.find("kindred: error:"), std::string::npos) << entry.path() << ": " << result.output;
        ++files;
    }
    EXPECT_GE(files, 10);
}

TEST(InspectCli, MissingModelIsAClearError) {
    const CommandResult result = run_kindred("inspect /nonexistent/model.gguf", true);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("/nonexistent/model.gguf"), std::string::npos) << result.output;
}

TEST(TokenizeCli, JsonIsExactlyOneArrayOfIds) {
    const CommandResult result = run_kindred("tokenize --model default --text 'Hello, friend! How are you?' --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto ids = nlohmann::json::parse(result.output);
    ASSERT_TRUE(ids.is_array());
    ASSERT_FALSE(ids.empty());
    for (const auto& id : ids) EXPECT_TRUE(id.is_number_integer());
}

TEST(TokenizeCli, HfTokenizerFileMatchesSharedVectors) {
    const CommandResult result =
        run_kindred("tokenize --tokenizer '" + shared_path("tokenizers/qwen3/tokenizer.json") + "' --text 'Hello, world!' --json");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(nlohmann::json::parse(result.output), nlohmann::json::parse("[9707,11,1879,0]"));
}

TEST(TokenizeCli, NeedsExactlyOneSource) {
    EXPECT_NE(run_kindred("tokenize --text hi --json").exit_code, 0);
}

}  // namespace
}  // namespace kindred::testing
