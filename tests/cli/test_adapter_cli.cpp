// `--adapter DIR` on generate and score: PEFT's greedy continuation over the default model
// (tools/goldens/adapter_logits.py), and clear errors for missing or corrupt adapter directories.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "run_kindred.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

const std::string kAdapter = source_path("tests/goldens/adapter_logits/adapter");

void expect_clean_failure(const std::string& arguments, const std::string& needle) {
    const CommandResult result = run_kindred(arguments, /*merge_stderr=*/true);
    EXPECT_EQ(result.signal, 0) << arguments;
    EXPECT_EQ(result.exit_code, 1) << arguments << ": " << result.output;
    EXPECT_NE(result.output.find("kindred: error:"), std::string::npos) << arguments << ": " << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << arguments << ": expected '" << needle << "' in: " << result.output;
}

TEST(AdapterCli, GreedyTokensMatchPeft) {
    std::ifstream in(source_path("tests/goldens/adapter_logits/logits.json"));
    ASSERT_TRUE(in);
    const auto golden = nlohmann::json::parse(in);
    for (const auto& chat : golden["chats"]) {
        const std::string prompt = chat["prompt"].get<std::string>();
        const auto expected = chat["generated_ids"].get<std::vector<int>>();
        // The golden continuations are 16 tokens without end-of-turn, so kindred reports all of them.
        ASSERT_EQ(expected.size(), golden["new_tokens"].get<std::size_t>()) << prompt;
        // PEFT ran transformers in fp32: the exact products (--products fp32), pinned whatever the default.
        const CommandResult result = run_kindred("generate --model default --products fp32 --adapter '" + kAdapter +
                                                 "' --prompt '" + prompt + "' --temperature 0 --json --max-tokens " +
                                                 std::to_string(expected.size()));
        ASSERT_EQ(result.exit_code, 0) << prompt << ": " << result.output;
        const auto report = nlohmann::json::parse(result.output);
        EXPECT_EQ(report["prompt_tokens"].get<std::size_t>(), chat["prompt_ids"].size()) << prompt;
        EXPECT_EQ(report["tokens"], nlohmann::json(expected)) << prompt << "\n  kindred: " << report["text"]
                                                              << "\n  PEFT: " << chat["text"];
    }
}

TEST(AdapterCli, ScoreChangesWithAdapter) {
    const std::string text = "--text 'The quick brown fox jumps over the lazy dog.' --json";
    const CommandResult base = run_kindred("score --model default " + text);
    const CommandResult adapted = run_kindred("score --model default --adapter '" + kAdapter + "' " + text);
    ASSERT_EQ(base.exit_code, 0) << base.output;
    ASSERT_EQ(adapted.exit_code, 0) << adapted.output;
    EXPECT_NE(nlohmann::json::parse(base.output)["nll"], nlohmann::json::parse(adapted.output)["nll"]);
}

TEST(AdapterCli, BadAdapterIsAClearError) {
    expect_clean_failure("generate --model default --prompt hi --adapter /nonexistent/adapter-dir", "/nonexistent/adapter-dir");
    expect_clean_failure("chat --model default --adapter /nonexistent/adapter-dir < /dev/null", "/nonexistent/adapter-dir");
    expect_clean_failure("score --model default --text 'a b c' --adapter /nonexistent/adapter-dir", "/nonexistent/adapter-dir");

    const ScratchDir scratch("kindred-adapter-cli");
    // Corrupt weights beside a valid config.
    const std::string corrupt = scratch / "corrupt";
    std::filesystem::create_directories(corrupt);
    std::filesystem::copy_file(kAdapter + "/adapter_config.json", corrupt + "/adapter_config.json");
    std::ofstream(corrupt + "/adapter_model.safetensors") << "not a safetensors file";
    expect_clean_failure("generate --model default --prompt hi --adapter '" + corrupt + "'", corrupt + "/adapter_model.safetensors");

    // A config whose rank disagrees with the tensors names the tensor.
    const std::string wrong_rank = scratch / "wrong-rank";
    std::filesystem::create_directories(wrong_rank);
    std::filesystem::copy_file(kAdapter + "/adapter_model.safetensors", wrong_rank + "/adapter_model.safetensors");
    std::ifstream config_in(kAdapter + "/adapter_config.json");
    auto config = nlohmann::json::parse(config_in);
    config["r"] = 4;
    std::ofstream(wrong_rank + "/adapter_config.json") << config.dump();
    expect_clean_failure("generate --model default --prompt hi --adapter '" + wrong_rank + "'", "lora_");
}

}  // namespace
}  // namespace kindred::testing
