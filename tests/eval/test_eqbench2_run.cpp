// The EQ-Bench v2 harness: retry rule and scoring with a scripted completion function (no model),
// then a short run of the default model on the released questions.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eval/eqbench2_run.h"
#include "infer/loaded_model.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

// A question with the released prompt's structure (eqbench2_prompt cuts its revision part).
EqBench2Question make_question(const std::string& id) {
    EqBench2Question question;
    question.id = id;
    question.prompt =
        "Dialogue " + id +
        "\nFirst pass scores:\nRemorseful: <score>\nAnnoyed: <score>\nCritique: <your critique here>\n\nRevised scores:\n"
        "Remorseful: <revised score>\n[End of answer]\n\nRemember: zero is a valid score.";
    question.emotions = {"Remorseful", "Indifferent", "Affectionate", "Annoyed"};
    question.reference_scores = {0, 6, 0, 7};
    return question;
}

constexpr const char* kExact = "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7";
constexpr const char* kGarbage = "I think Robert feels a mix of things.";

EqBench2RunOptions quiet(std::size_t limit = 0) {
    EqBench2RunOptions options;
    options.limit = limit;
    options.progress = false;
    return options;
}

struct Call {
    std::string id;
    double temperature;
    int attempt;
};

TEST(EqBench2Run, RetriesWithHigherTemperatureUntilAnAnswerParses) {
    const std::vector<EqBench2Question> questions = {make_question("1")};
    std::vector<Call> calls;
    const auto result = run_eqbench2(
        questions,
        [&](const EqBench2Question& question, const std::string& prompt, double temperature, int attempt) -> std::string {
            EXPECT_EQ(prompt, eqbench2_prompt(question));
            calls.push_back({question.id, temperature, attempt});
            return attempt == 0 ? kGarbage : kExact;
        },
        quiet());
    ASSERT_EQ(calls.size(), 2u);
    // The harness: temp = 0.01, then temp += 0.15 after the failed try.
    EXPECT_DOUBLE_EQ(calls[0].temperature, 0.01);
    EXPECT_DOUBLE_EQ(calls[1].temperature, 0.01 + 0.15);
    EXPECT_EQ(calls[1].attempt, 1);
    ASSERT_EQ(result.questions.size(), 1u);
    EXPECT_EQ(result.questions[0].attempts, 2);
    EXPECT_EQ(result.questions[0].answer, kExact);
    EXPECT_DOUBLE_EQ(*result.questions[0].score, 10.0);
    EXPECT_DOUBLE_EQ(result.score, 100.0);
}

TEST(EqBench2Run, GivesUpAfterThreeAttemptsAndKeepsTheLastAnswer) {
    const std::vector<EqBench2Question> questions = {make_question("1"), make_question("2")};
    std::vector<Call> calls;
    const auto result = run_eqbench2(
        questions,
        [&](const EqBench2Question& question, const std::string&, double temperature, int attempt) -> std::string {
            calls.push_back({question.id, temperature, attempt});
            if (question.id == "2") return kExact;
            return attempt == 2 ? "Remorseful: 1\nAnnoyed: 2" : kGarbage;
        },
        quiet());
    ASSERT_EQ(calls.size(), 4u);  // three for question 1, one for question 2
    EXPECT_DOUBLE_EQ(calls[2].temperature, 0.01 + 0.15 + 0.15);
    EXPECT_EQ(calls[3].id, "2");
    EXPECT_DOUBLE_EQ(calls[3].temperature, 0.01);
    EXPECT_FALSE(result.questions[0].score);
    EXPECT_EQ(result.questions[0].attempts, kEqBench2Attempts);
    EXPECT_EQ(result.questions[0].answer, "Remorseful: 1\nAnnoyed: 2");
    EXPECT_EQ(result.n, 2u);
    EXPECT_EQ(result.parseable, 1u);
    EXPECT_DOUBLE_EQ(result.parseable_fraction, 0.5);
    EXPECT_DOUBLE_EQ(result.score, 100.0);  // the mean runs over parseable answers only
    EXPECT_FALSE(eqbench2_passes(result));
}

TEST(EqBench2Run, ScoresLikeRescoringItsAnswers) {
    std::vector<EqBench2Question> questions;
    for (int i = 1; i <= 6; ++i) questions.push_back(make_question(std::to_string(i)));
    // Per question: off by 0..5 on Annoyed, question 6 never parseable.
    const auto result = run_eqbench2(
        questions,
        [](const EqBench2Question& question, const std::string&, double, int) -> std::string {
            const int i = std::stoi(question.id);
            if (i == 6) return kGarbage;
            return "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: " + std::to_string(7 - i + 1);
        },
        quiet());
    std::map<std::string, std::string> answers;
    for (const auto& question : result.questions) answers[question.id] = question.answer;
    const auto rescored = score_eqbench2_answers(questions, answers);
    ASSERT_EQ(rescored.questions.size(), result.questions.size());
    for (std::size_t i = 0; i < result.questions.size(); ++i) {
        EXPECT_EQ(rescored.questions[i].id, result.questions[i].id);
        EXPECT_EQ(rescored.questions[i].score, result.questions[i].score) << result.questions[i].id;
    }
    EXPECT_EQ(rescored.score, result.score);
    EXPECT_EQ(rescored.parseable, 5u);
    EXPECT_EQ(result.parseable, 5u);
    // 5 of 6 = 83.33...% is exactly at the official floor, which passes.
    EXPECT_TRUE(eqbench2_passes(result));
    // By hand: penalties 0, 6.5/(1+e^3.6), 6.5/(1+e^2.4), 6.5/(1+e^1.2), 3.25 for d = 0..4.
    double sum = 0.0;
    for (const double d : {0.0, 1.0, 2.0, 3.0, 4.0}) sum += 10.0 - 0.7477 * (d == 0.0 ? 0.0 : 6.5 / (1.0 + std::exp(-1.2 * (d - 4.0))));
    EXPECT_DOUBLE_EQ(result.score, std::round(100.0 * sum / 5.0 / 10.0 * 100.0) / 100.0);
}

TEST(EqBench2Run, LimitRunsTheFirstQuestions) {
    const std::vector<EqBench2Question> questions = {make_question("1"), make_question("2"), make_question("3")};
    std::vector<std::string> asked;
    const auto complete = [&](const EqBench2Question& question, const std::string&, double, int) -> std::string {
        asked.push_back(question.id);
        return kExact;
    };
    EXPECT_EQ(run_eqbench2(questions, complete, quiet(2)).n, 2u);
    EXPECT_EQ(asked, (std::vector<std::string>{"1", "2"}));
    EXPECT_EQ(run_eqbench2(questions, complete, quiet(10)).n, 3u);  // a limit past the end takes all
}

TEST(EqBench2Run, QuestionsComeInNumericIdOrder) {
    const testing::ScratchDir scratch("kindred-eqbench-order");
    nlohmann::json file = nlohmann::json::object();
    for (const char* id : {"10", "2", "b", "1", "a"}) {
        const auto question = make_question(id);
        file[id] = {{"prompt", question.prompt},
                    {"reference_answer_fullscale",
                     {{"emotion1", "Remorseful"}, {"emotion1_score", 0}, {"emotion2", "Indifferent"}, {"emotion2_score", 6},
                      {"emotion3", "Affectionate"}, {"emotion3_score", 0}, {"emotion4", "Annoyed"}, {"emotion4_score", "7"}}}};
    }
    std::ofstream(scratch / "q.json") << file.dump();
    std::vector<std::string> ids;
    for (const auto& question : load_eqbench2_questions(scratch / "q.json")) ids.push_back(question.id);
    EXPECT_EQ(ids, (std::vector<std::string>{"1", "2", "10", "a", "b"}));
}

// The default model on the first released questions: the real generation path, its determinism
// and that its numbers are exactly what --answers gives for its answers. SmolLM2-135M rarely
// answers in the asked format, so each question usually takes all three attempts; the rerun is
// one question only (a --limit run must reproduce the start of a longer one) to keep this short.
TEST(EqBench2Run, DefaultModelIsDeterministicAndRescoresTheSame) {
    const auto questions = load_eqbench2_questions(testing::shared_path("eqbench-v2/eq_bench_v2_questions_171.json"));
    ASSERT_EQ(questions.size(), 171u);
    EXPECT_EQ(questions[0].id, "1");
    const auto model = infer::LoadedModel::open(testing::default_model_path());
    EqBench2RunOptions options = quiet(2);
    options.seed = 7;
    const auto first = run_eqbench2(*model, questions, options);
    options.limit = 1;
    const auto second = run_eqbench2(*model, questions, options);
    ASSERT_EQ(second.n, 1u);
    EXPECT_EQ(second.questions[0].answer, first.questions[0].answer);
    EXPECT_EQ(second.questions[0].attempts, first.questions[0].attempts);
    EXPECT_EQ(second.questions[0].score, first.questions[0].score);
    ASSERT_EQ(first.n, 2u);
    EXPECT_GE(first.parseable_fraction, 0.0);
    EXPECT_LE(first.parseable_fraction, 1.0);
    std::map<std::string, std::string> answers;
    for (std::size_t i = 0; i < first.questions.size(); ++i) {
        const auto& question = first.questions[i];
        EXPECT_EQ(question.id, questions[i].id);
        EXPECT_GE(question.attempts, 1);
        EXPECT_LE(question.attempts, kEqBench2Attempts);
        EXPECT_FALSE(question.answer.empty()) << question.id;
        answers[question.id] = question.answer;
    }
    const auto rescored = score_eqbench2_answers(questions, answers);
    EXPECT_EQ(rescored.n, first.n);
    EXPECT_EQ(rescored.parseable, first.parseable);
    EXPECT_EQ(rescored.score, first.score);
    for (std::size_t i = 0; i < first.questions.size(); ++i) EXPECT_EQ(rescored.questions[i].score, first.questions[i].score);
}

}  // namespace
}  // namespace kindred::eval
