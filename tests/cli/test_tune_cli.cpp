// `kindred tune` argument and recipe errors: each exits non-zero naming the flag, key or trial, and
// all of them are caught before the model is opened (so these tests take milliseconds). Then one
// real search on the default model, as small as it gets (2 one-step trials of plain chat SFT, rank
// 4, 4 dev examples: a few seconds), checks the wiring to the trainer, the files and resume. The
// search itself is tested without training in tests/train/test_tune.cpp.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include "cli/run_kindred.h"
#include "test_paths.h"

namespace {

using kindred::testing::run_kindred;
using kindred::testing::source_path;
namespace fs = std::filesystem;

class TuneCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("kindred-cli-tune-" + std::to_string(::getpid()) + "-" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    // `grid` holds the lines under tune.grid.objective, from line 11 on.
    std::string recipe(const std::string& grid, bool dev = true) const {
        const auto path = (dir_ / "recipe.yaml").string();
        const auto data = source_path("data/chat-smoke.jsonl");
        std::ofstream(path) << "name: cli\n"
                            << "data:\n  path: " << data << "\n" << (dev ? "  dev_path: " + data + "\n" : "  max_seq_len: 128\n")
                            << "optimisation:\n  max_steps: 50\n"
                            << "tune:\n  steps: 2\n  grid:\n    objective:\n"
                            << grid;
        return path;
    }
    std::string tune(const std::string& arguments) const {
        return "tune --out " + (dir_ / "out").string() + " " + arguments;
    }
    fs::path dir_;
};

TEST_F(TuneCli, UnknownGridKeyExitsOneNamingKeyLineAndTheNearestTunableKey) {
    const auto result = run_kindred(tune("--config " + recipe("      emotion: [0.5]\n      stratgy: [0, 1]\n")), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("line 12: 'tune.grid.objective.stratgy' is not a tunable key"), std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("did you mean 'objective.strategy'"), std::string::npos) << result.output;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << "nothing is written for a bad recipe";
}

TEST_F(TuneCli, SearchFlagsAreCheckedAgainstTheGrid) {
    const auto path = recipe("      emotion: [0.25, 0.5]\n      strategy: [0, 1]\n");
    auto result = run_kindred(tune("--config " + path + " --search bayes"), true);
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("--search"), std::string::npos) << result.output;

    result = run_kindred(tune("--config " + path + " --search random"), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("'tune.trials' must be set"), std::string::npos) << result.output;

    result = run_kindred(tune("--config " + path + " --search random --trials 5"), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("asks for 5 distinct draws but the grid holds 4 combinations"), std::string::npos)
        << result.output;

    result = run_kindred(tune("--config " + path + " --trials 2"), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("'tune.trials' applies to random search"), std::string::npos) << result.output;

    result = run_kindred(tune("--config " + path + " --search random --trials 2 --seed -1"), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("'tune.seed' must not be negative"), std::string::npos) << result.output;
}

TEST_F(TuneCli, MissingConfigOrDevSetIsRefused) {
    auto result = run_kindred("tune", true);
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("--config"), std::string::npos) << result.output;

    result = run_kindred(tune("--config " + recipe("      emotion: [0.25, 0.5]\n", false)), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("must set data.dev_path"), std::string::npos) << result.output;
}

TEST_F(TuneCli, ATrialRecipeTheTrainerRejectsIsNamedBeforeTraining) {
    // 5000 passes the tune section's check (a weight >= 0) but not the trainer's range for λ.
    const auto result = run_kindred(tune("--config " + recipe("      emotion: [0.5, 5000]\n")), true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("trial-001 (objective.emotion=5000)"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("objective.emotion"), std::string::npos) << result.output;
}

TEST_F(TuneCli, TwoOneStepTrialsOnTheDefaultModelThenResume) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const auto data = source_path("data/chat-smoke.jsonl");
    const auto path = (dir_ / "tiny.yaml").string();
    std::ofstream(path) << "name: tiny\ndata:\n  path: " << data << "\n  dev_path: " << data << "\n  max_seq_len: 128\n"
                        << "adapter:\n  rank: 4\n  targets: [q, v]\n"
                        << "optimisation:\n  max_steps: 50\n  lr: 1.0e-3\n"
                        << "evaluation:\n  max_examples: 4\nlogging:\n  progress: false\n"
                        << "tune:\n  steps: 1\n  grid:\n    objective:\n      lm: [0.5, 1.0]\n";
    const auto first = run_kindred(tune("--threads 2 --config " + path), true);
    ASSERT_EQ(first.exit_code, 0) << first.output;
    EXPECT_NE(first.output.find("[1/2] trial-000 objective.lm=0.5: J "), std::string::npos) << first.output;
    EXPECT_NE(first.output.find("[2/2] trial-001 objective.lm=1: J "), std::string::npos) << first.output;
    EXPECT_NE(first.output.find("Dev objective J = nll (lower is better)"), std::string::npos) << first.output;
    EXPECT_NE(first.output.find("| **chosen** | trial-0"), std::string::npos) << first.output;
    const auto out = dir_ / "out";
    for (const char* file : {"trials.jsonl", "trials.md", "best.yaml", "trial-000/adapter", "trial-001/metrics.jsonl"})
        EXPECT_TRUE(fs::exists(out / file)) << file;
    EXPECT_FALSE(fs::exists(out / "trial-000" / "checkpoints")) << "a finished trial's checkpoints are removed";
    std::stringstream best;
    best << std::ifstream(out / "best.yaml").rdbuf();
    EXPECT_EQ(best.str().find("tune:"), std::string::npos) << best.str();
    EXPECT_NE(best.str().find("max_steps: 50"), std::string::npos) << best.str();

    // Same recipe, same out: both trials come from trials.jsonl, nothing trains.
    const auto again = run_kindred(tune("--threads 2 --config " + path), true);
    ASSERT_EQ(again.exit_code, 0) << again.output;
    EXPECT_NE(again.output.find("[2/2] trial-001 objective.lm=1: J "), std::string::npos) << again.output;
    EXPECT_NE(again.output.find("(earlier run)"), std::string::npos) << again.output;
}

}  // namespace
