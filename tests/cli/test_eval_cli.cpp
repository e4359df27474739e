// `kindred eval eqbench2`: argument errors before anything loads, scoring saved answers, and a
// one-question model run whose --out file rescored with --answers gives the same numbers.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kindred.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

const std::string kQuestionsFile = "'" + shared_path("eqbench-v2/eq_bench_v2_questions_171.json") + "'";
const std::string kQuestions = "--questions " + kQuestionsFile;

void expect_error(const std::string& arguments, const std::string& needle) {
    const CommandResult result = run_kindred("eval eqbench2 " + arguments, /*merge_stderr=*/true);
    EXPECT_EQ(result.signal, 0) << arguments;
    EXPECT_NE(result.exit_code, 0) << arguments << ": " << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << arguments << ": expected '" << needle << "' in: " << result.output;
}

TEST(EvalCli, ArgumentErrors) {
    expect_error(kQuestions, "give --model");
    // Any existing file passes the flag's check; the errors come before it is read.
    const std::string answers = " --answers " + kQuestionsFile;
    expect_error(kQuestions + " --model default" + answers, "exclude each other");
    expect_error(kQuestions + answers + " --adapter /tmp", "--adapter needs --model");
    expect_error(kQuestions + answers + " --limit 3", "--limit needs --model");
    expect_error(kQuestions + answers + " --parallel 4", "--parallel needs --model");
    expect_error(kQuestions + answers + " --out /tmp/x.json", "--out needs --model");
    expect_error(kQuestions + " --model default --limit -1", "--limit must be >= 1");
    expect_error(kQuestions + " --model default --limit 0", "--limit must be >= 1");
    expect_error(kQuestions + " --model default --parallel 0", "--parallel must be >= 1");
    expect_error(kQuestions + " --model default --seed abc", "--seed must be");
    expect_error("--questions /nonexistent/questions.json --model default", "/nonexistent/questions.json");
    expect_error(kQuestions + " --model /nonexistent/model.gguf", "/nonexistent/model.gguf");
    // A questions file given as answers: its values are objects, not answer texts.
    expect_error(kQuestions + answers, "is not a string");
}

TEST(EvalCli, ScoresSavedAnswers) {
    const ScratchDir scratch("kindred-eval-cli");
    // Question 1's reference: Remorseful 0, Indifferent 6, Affectionate 0, Annoyed 7. The exact
    // answer scores 10; question 2's answer has no `name: score` pairs.
    std::ofstream(scratch / "answers.json") << nlohmann::json{
        {"1", "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7"}, {"2", "no idea"}}.dump();
    const CommandResult result = run_kindred("eval eqbench2 " + kQuestions + " --answers '" + scratch / "answers.json" + "' --json");
    // One of two parseable is below the 83.33% floor: the numbers are printed, the exit code is 1.
    EXPECT_EQ(result.exit_code, 1) << result.output;
    const auto report = nlohmann::json::parse(result.output);
    EXPECT_EQ(report["n"], 2);
    EXPECT_EQ(report["parseable"], 1);
    EXPECT_DOUBLE_EQ(report["parseable_fraction"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(report["score"].get<double>(), 100.0);
    EXPECT_EQ(report["valid"], false);
    EXPECT_TRUE(report["questions"]["2"].is_null());

    std::ofstream(scratch / "one.json") << nlohmann::json{{"1", "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7"}}.dump();
    const CommandResult valid = run_kindred("eval eqbench2 " + kQuestions + " --answers '" + scratch / "one.json" + "'");
    EXPECT_EQ(valid.exit_code, 0) << valid.output;
    EXPECT_NE(valid.output.find("EQ-Bench v2 score 100.00"), std::string::npos) << valid.output;
}

TEST(EvalCli, ModelRunRescoresFromItsOutFile) {
    const ScratchDir scratch("kindred-eval-cli");
    const std::string out = scratch / "answers.json";
    const CommandResult run =
        run_kindred("eval eqbench2 " + kQuestions + " --model default --limit 1 --seed 3 --threads 2 --json --out '" + out + "'");
    ASSERT_EQ(run.signal, 0) << run.output;
    // SmolLM2-135M may or may not reach the floor on one question; either way the JSON is printed.
    const auto report = nlohmann::json::parse(run.output);
    EXPECT_EQ(run.exit_code, report["valid"].get<bool>() ? 0 : 1) << run.output;
    EXPECT_EQ(report["n"], 1);
    EXPECT_EQ(report["seed"], 3);
    std::ifstream in(out);
    ASSERT_TRUE(in) << out;
    const auto answers = nlohmann::json::parse(in);
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_TRUE(answers.contains("1"));
    const auto rescored = nlohmann::json::parse(run_kindred("eval eqbench2 " + kQuestions + " --answers '" + out + "' --json").output);
    EXPECT_EQ(rescored["score"], report["score"]);
    EXPECT_EQ(rescored["parseable"], report["parseable"]);
    EXPECT_EQ(rescored["n"], report["n"]);
    EXPECT_EQ(rescored["questions"], report["questions"]);
}

}  // namespace
}  // namespace kindred::testing
