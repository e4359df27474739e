// `kindred train sft` and `kindred export` end to end: recipe errors exit 1 naming key and line,
// a two-step run on the default model writes its run directory, whose adapter exports to a
// llama.cpp LoRA GGUF and to PEFT, and a one-step multi-objective run on the prepared bundled
// samples trains every head and the safety KL and reports them; `kindred ablate` refuses a missing
// pairs prompts file before it trains anything.
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include "cli/run_kindred.h"
#include "test_paths.h"

namespace {

using kindred::testing::source_path;
namespace fs = std::filesystem;

class TrainCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("kindred-cli-train-" + std::to_string(::getpid()) + "-" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string recipe(const std::string& extra) const {
        const auto path = (dir_ / "recipe.yaml").string();
        std::ofstream(path) << "name: cli\n"
                            << "data:\n  path: " << source_path("data/chat-smoke.jsonl") << "\n  max_seq_len: 128\n"
                            << "optimisation:\n  max_steps: 2\n  lr: 1.0e-3\n"
                            << "output:\n  dir: " << (dir_ / "runs").string() << "\n"
                            << extra;
        return path;
    }
    fs::path dir_;
};

TEST_F(TrainCli, UnknownRecipeKeyExitsOneNamingKeyAndLine) {
    const auto path = recipe("adapter:\n  rnak: 8\n");
    const auto result = kindred::testing::run_kindred("train sft --config " + path, true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("adapter.rnak"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("line 11"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("adapter.rank"), std::string::npos) << result.output;  // the did-you-mean hint
}

TEST_F(TrainCli, BadOverrideValueExitsOneNamingIt) {
    const auto result = kindred::testing::run_kindred("train sft --config " + recipe("") + " optimisation.schedule=linear", true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("optimisation.schedule"), std::string::npos) << result.output;
}

// Before: internal error: std::bad_alloc (the adapters were sized by the rank first).
TEST_F(TrainCli, RankAboveTheModelsDimensionsExitsOneNamingTheKey) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const auto result = kindred::testing::run_kindred(
        "train sft --threads 2 --config " + source_path("configs/smollm2-lora-smoke.yaml") + " adapter.rank=100000" +
            " data.path=" + source_path("data/chat-smoke.jsonl") + " output.dir=" + (dir_ / "runs").string(), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("adapter.rank"), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("internal error"), std::string::npos) << result.output;
}

TEST_F(TrainCli, TwoStepRunOnTheDefaultModelThenExport) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const auto path = recipe("adapter:\n  rank: 4\n  targets: [q, v]\nlogging:\n  progress: false\n");
    const auto result = kindred::testing::run_kindred("train sft --threads 2 --config " + path, true);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const auto run = dir_ / "runs" / "cli";
    for (const char* file : {"config.yaml", "metrics.jsonl", "loss.svg", "lr.svg", "adapter/adapter_model.safetensors",
                             "checkpoints/latest"})
        EXPECT_TRUE(fs::exists(run / file)) << file;
    // A finished run resumed is a no-op.
    const auto again = kindred::testing::run_kindred("train sft --resume --config " + path, true);
    EXPECT_EQ(again.exit_code, 0) << again.output;
    EXPECT_NE(again.output.find("already complete at step 2"), std::string::npos) << again.output;
    // Starting it afresh over existing checkpoints is refused.
    EXPECT_EQ(kindred::testing::run_kindred("train sft --config " + path, true).exit_code, 1);

    const auto gguf = (dir_ / "adapter.gguf").string();
    const auto exported = kindred::testing::run_kindred(
        "export --adapter " + (run / "adapter").string() + " --format gguf-lora --out " + gguf, true);
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    EXPECT_GT(fs::file_size(gguf), 0u);
    const auto copy = kindred::testing::run_kindred(
        "export --adapter " + (run / "adapter").string() + " --format peft --out " + (dir_ / "peft").string(), true);
    ASSERT_EQ(copy.exit_code, 0) << copy.output;
    EXPECT_TRUE(fs::exists(dir_ / "peft" / "adapter_config.json"));
    EXPECT_EQ(kindred::testing::run_kindred("export --adapter " + (run / "adapter").string() + " --format onnx --out x", true)
                  .exit_code,
              1);
}

TEST_F(TrainCli, MultiObjectiveKeyErrorsNameKeyAndLine) {
    const auto unknown = kindred::testing::run_kindred(
        "train sft --config " + recipe("objective:\n  emotion: 0.5\n  stratgy: 0.5\n"), true);
    EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
    EXPECT_NE(unknown.output.find("objective.stratgy"), std::string::npos) << unknown.output;
    EXPECT_NE(unknown.output.find("line 12"), std::string::npos) << unknown.output;
    EXPECT_NE(unknown.output.find("objective.strategy"), std::string::npos) << unknown.output;
    const auto range = kindred::testing::run_kindred("train sft --config " + recipe("") + " safety.temperature=-1", true);
    EXPECT_EQ(range.exit_code, 1) << range.output;
    EXPECT_NE(range.output.find("safety.temperature"), std::string::npos) << range.output;
}

TEST_F(TrainCli, MultiObjectiveRunOnPreparedSamples) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const auto prepared = dir_ / "prepared";
    const auto prepare = kindred::testing::run_kindred(
        "data prepare --ed " + source_path("data/samples/empatheticdialogues") + " --esconv " +
            source_path("data/samples/esconv/ESConv.json") + " --out " + prepared.string(),
        true);
    ASSERT_EQ(prepare.exit_code, 0) << prepare.output;
    const auto path = (dir_ / "multitask.yaml").string();
    // Short rows keep the test fast (long ESConv conversations are dropped, with a warning). No
    // GoEmotions: its emotion-only examples (no LM target, no teacher) are 60% of the mixture, so
    // a one-step run could see only them; the tiny-model tests in tests/train cover them.
    std::ofstream(path) << "name: mt\n"
                        << "data:\n  path: " << (prepared / "train.jsonl").string()
                        << "\n  dev_path: " << (prepared / "dev.jsonl").string() << "\n  max_seq_len: 128\n"
                        << "adapter:\n  rank: 4\n  targets: [q, v]\n"
                        << "objective:\n  lm: 1.0\n  emotion: 0.5\n  strategy: 0.5\n  valence_arousal: 0.25\n  safety_kl: 0.1\n"
                        << "safety:\n  top_k: 8\n"
                        << "evaluation:\n  max_examples: 1\n"
                        << "optimisation:\n  max_steps: 1\n  lr: 1.0e-3\n"
                        << "logging:\n  progress: false\n"
                        << "output:\n  dir: " << (dir_ / "runs").string() << "\n";
    const auto result = kindred::testing::run_kindred("train sft --threads 2 --config " + path, true);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    for (const char* text : {"objective: LM 1, emotion 0.5, strategy 0.5, valence/arousal 0.25, safety KL 0.1",
                             "teacher: frozen base", "components: lm ", "safety teacher cache:", "dev: {"})
        EXPECT_NE(result.output.find(text), std::string::npos) << text << "\n" << result.output;
    const auto run = dir_ / "runs" / "mt";
    for (const char* file : {"loss.svg", "loss_components.svg", "dev.svg", "adapter/adapter_model.safetensors",
                             "adapter/heads.safetensors", "adapter/heads.json"})
        EXPECT_TRUE(fs::exists(run / file)) << file;
}

// The pairs are built only after the full variant's SFT run, so their prompts file is checked
// before that run starts: the matrix stops in seconds, naming the DPO recipe and its key.
TEST_F(TrainCli, AblateRefusesAMissingPairsPromptsFileBeforeTraining) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const auto prepared = dir_ / "prepared";
    const auto prepare = kindred::testing::run_kindred(
        "data prepare --ed " + source_path("data/samples/empatheticdialogues") + " --out " + prepared.string(), true);
    ASSERT_EQ(prepare.exit_code, 0) << prepare.output;
    const auto missing = (dir_ / "no-such-prompts.jsonl").string();
    const auto path = (dir_ / "ablate.yaml").string();
    std::ofstream(path) << "name: matrix\noutput:\n  dir: " << (dir_ / "runs").string() << "\n"
                        << "sft: " << source_path("configs/demo.yaml") << "\n"
                        << "dpo: " << source_path("configs/demo-dpo.yaml") << "\n"
                        << "sft_overrides: [data.path=" << (prepared / "train.jsonl").string()
                        << ", data.dev_path=" << (prepared / "dev.jsonl").string() << ", evaluation.max_examples=1]\n"
                        << "dpo_overrides: [pairs.prompts=" << missing
                        << ", pairs.dev_prompts=" << (prepared / "dev.jsonl").string() << "]\n";
    const auto result = kindred::testing::run_kindred("ablate --threads 2 --config " + path, true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("configs/demo-dpo.yaml: pairs.prompts: file '" + missing + "' not found"), std::string::npos)
        << result.output;
    EXPECT_FALSE(fs::exists(dir_ / "runs" / "matrix" / "full-sft")) << "trained before refusing";
}

}  // namespace
