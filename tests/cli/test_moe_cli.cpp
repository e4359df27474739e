// `kindred generate`, `chat` and `train sft` on the tiny mixture-of-experts chat files
// (tests/goldens/inference/tiny-{qwen3moe,gptoss}-chat.gguf, tools/goldens/moe_gguf.py: the tiny
// Qwen3-MoE and gpt-oss with a byte-level tokenizer, the families' control tokens and their real
// chat templates). The random weights never write harmony's channel markup, so everything a
// gpt-oss chat generates is hidden from the user (only a final channel is shown), while --raw
// shows it: the contrast shows that the CLI reads gpt-oss replies as harmony. Training runs two
// steps with adapters on attention and both expert stacks, writes a PEFT adapter with
// target_parameters, generation loads it back, and GGUF LoRA export refuses the expert stacks.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_kindred.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace {

using kindred::testing::run_kindred;
using kindred::testing::source_path;
namespace fs = std::filesystem;

std::string chat_file(const char* family) {
    return source_path(std::string("tests/goldens/inference/tiny-") + family + "-chat.gguf");
}

nlohmann::json generate_json(const std::string& arguments) {
    const auto result = run_kindred("generate --threads 2 --temperature 0 --json " + arguments);
    EXPECT_EQ(result.exit_code, 0) << arguments << ": " << result.output;
    return result.exit_code == 0 ? nlohmann::json::parse(result.output) : nlohmann::json::object();
}

TEST(MoeCli, GenerateReadsGptOssRepliesAsHarmony) {
    const auto chat = generate_json("--model " + chat_file("gptoss") + " --prompt 'hello there' --max-tokens 12");
    EXPECT_EQ(chat["tokens"].size(), 12u);
    EXPECT_EQ(chat["text"], "");  // no final channel was opened
    const auto raw = generate_json("--model " + chat_file("gptoss") + " --raw --prompt 'hello there' --max-tokens 12");
    EXPECT_EQ(raw["tokens"].size(), 12u);
    EXPECT_NE(raw["text"], "");
}

TEST(MoeCli, GenerateAndChatRunQwen3Moe) {
    const auto reply = generate_json("--model " + chat_file("qwen3moe") + " --prompt 'hello there' --max-tokens 6");
    EXPECT_GT(reply["prompt_tokens"].get<int>(), 10);
    EXPECT_FALSE(reply["tokens"].empty());
    const std::string input = ::testing::TempDir() + "/kindred-moe-chat-input.txt";
    std::ofstream(input) << "hi\nhow are you?\n";
    for (const char* family : {"qwen3moe", "gptoss"}) {
        const auto result =
            run_kindred("chat --threads 2 --model " + chat_file(family) + " --max-tokens 4 --temperature 0 < " + input, true);
        EXPECT_EQ(result.exit_code, 0) << family << ": " << result.output;
        EXPECT_EQ(result.output.find("error"), std::string::npos) << result.output;
    }
}

class MoeTrainCli : public ::testing::Test {
protected:
    std::string recipe(const std::string& model, const std::string& targets) const {
        const auto path = (dir_ / "recipe.yaml").string();
        std::ofstream(path) << "name: moe\nmodel:\n  path: " << model << "\n"
                            << "data:\n  path: " << source_path("data/chat-smoke.jsonl") << "\n  max_seq_len: 768\n"
                            << "optimisation:\n  max_steps: 2\n  lr: 1.0e-3\n"
                            << "adapter:\n  rank: 4\n  targets: " << targets << "\n"
                            << "logging:\n  progress: false\n"
                            << "output:\n  dir: " << (dir_ / "runs").string() << "\n";
        return path;
    }
    kindred::testing::ScratchDir scratch_{"kindred-cli-moe"};
    const fs::path& dir_ = scratch_.path();
};

TEST_F(MoeTrainCli, TwoStepsOnTheExpertsThenGenerateWithTheAdapter) {
    for (const char* family : {"qwen3moe", "gptoss"}) {
        fs::remove_all(dir_ / "runs");
        const auto path = recipe(chat_file(family), "[q, k, v, o, experts_gate_up, experts_down]");
        const auto result = run_kindred("train sft --threads 2 --config " + path, true);
        ASSERT_EQ(result.exit_code, 0) << family << ": " << result.output;
        const auto adapter = dir_ / "runs" / "moe" / "adapter";
        std::ifstream config_file(adapter / "adapter_config.json");
        const auto config = nlohmann::json::parse(config_file);
        EXPECT_EQ(config["target_parameters"],
                  nlohmann::json({"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}));
        EXPECT_EQ(config["target_modules"], nlohmann::json({"q_proj", "k_proj", "v_proj", "o_proj"}));
        const auto reply = generate_json("--model " + chat_file(family) + " --adapter " + adapter.string() +
                                         " --prompt 'hello there' --max-tokens 4");
        EXPECT_EQ(reply["tokens"].size(), 4u) << family;
        const auto gguf = run_kindred("export --adapter " + adapter.string() + " --format gguf-lora --out " +
                                      (dir_ / "a.gguf").string(), true);
        EXPECT_EQ(gguf.exit_code, 1) << gguf.output;
        EXPECT_NE(gguf.output.find("--format peft"), std::string::npos) << gguf.output;
    }
}

TEST_F(MoeTrainCli, DenseTargetsOnAllExpertLayersExitOneNamingTheKey) {
    const auto result = run_kindred("train sft --threads 2 --config " + recipe(chat_file("qwen3moe"), "[q, gate]"), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("adapter.targets"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("experts_gate_up"), std::string::npos) << result.output;
}

}  // namespace
