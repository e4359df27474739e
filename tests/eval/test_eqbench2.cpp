#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/eqbench2.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

EqBench2Question robert_question() {
    // Question 1 of the released file: Remorseful 0, Indifferent 6, Affectionate 0, Annoyed 7.
    EqBench2Question question;
    question.id = "1";
    question.emotions = {"Remorseful", "Indifferent", "Affectionate", "Annoyed"};
    question.reference_scores = {0, 6, 0, 7};
    return question;
}

TEST(EqBench2, ExactAnswerScoresTen) {
    const auto parsed = parse_eqbench2_answer("Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7\n");
    EXPECT_DOUBLE_EQ(*score_eqbench2_answer(robert_question(), parsed), 10.0);
}

TEST(EqBench2, PenaltiesFollowTheOfficialCurve) {
    // Annoyed off by 4: penalty 6.5 / (1 + e^0) = 3.25; Indifferent off by 1: 6.5 / (1 + e^3.6).
    // Remorseful off by 8 (> 5): penalty 8.
    const auto parsed = parse_eqbench2_answer("Remorseful: 8\nIndifferent: 5\nAffectionate: 0\nAnnoyed: 3");
    const double expected = 10.0 - 0.7477 * (3.25 + 6.5 / (1.0 + std::exp(3.6)) + 8.0);
    EXPECT_NEAR(*score_eqbench2_answer(robert_question(), parsed), expected, 1e-12);
    // By hand: e^3.6 = 36.598, 6.5 / 37.598 = 0.172881; 10 - 0.7477 * 11.422881 = 1.45911.
    EXPECT_NEAR(expected, 1.45911, 1e-5);
}

TEST(EqBench2, UnparseableAnswers) {
    const auto question = robert_question();
    // Three emotions only.
    EXPECT_FALSE(score_eqbench2_answer(question, parse_eqbench2_answer("Remorseful: 1\nIndifferent: 2\nAnnoyed: 3")));
    // A fifth `name: number` pair makes five keys.
    EXPECT_FALSE(score_eqbench2_answer(
        question, parse_eqbench2_answer("Remorseful: 1\nIndifferent: 2\nAffectionate: 0\nAnnoyed: 3\nConfidence: 9")));
    // Wrong name (case matters in the harness).
    EXPECT_FALSE(score_eqbench2_answer(
        question, parse_eqbench2_answer("remorseful: 1\nIndifferent: 2\nAffectionate: 0\nAnnoyed: 3")));
    // All zero: the harness's v1 check rejects it.
    EXPECT_FALSE(score_eqbench2_answer(
        question, parse_eqbench2_answer("Remorseful: 0\nIndifferent: 0\nAffectionate: 0\nAnnoyed: 0")));
    // `name:score` without whitespace does not match \s+.
    EXPECT_FALSE(score_eqbench2_answer(
        question, parse_eqbench2_answer("Remorseful:1\nIndifferent: 2\nAffectionate: 0\nAnnoyed: 3")));
}

TEST(EqBench2, LaterDuplicateReplacesEarlier) {
    const auto parsed = parse_eqbench2_answer("Annoyed: 2\nRemorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7");
    ASSERT_EQ(parsed.size(), 4u);
    EXPECT_DOUBLE_EQ(*score_eqbench2_answer(robert_question(), parsed), 10.0);
}

TEST(EqBench2, BenchmarkScoreAveragesParseableAnswers) {
    const std::vector<EqBench2Question> questions = {robert_question()};
    // Only one question, so a second answer set is scored against a renamed copy.
    std::vector<EqBench2Question> two = {robert_question(), robert_question()};
    two[1].id = "2";
    const auto result = score_eqbench2_answers(two, {{"1", "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 7"},
                                                     {"2", "Remorseful: 0\nIndifferent: 6\nAffectionate: 0\nAnnoyed: 3"}});
    // Question scores 10 and 10 - 0.7477 * 3.25 = 7.569975; mean 8.7849875 -> 87.849875 -> 87.85.
    EXPECT_DOUBLE_EQ(result.score, 87.85);
    EXPECT_EQ(result.n, 2u);
    EXPECT_EQ(result.parseable, 2u);
    EXPECT_DOUBLE_EQ(result.parseable_fraction, 1.0);
    EXPECT_THROW(score_eqbench2_answers(questions, {{"99", "x"}}), Error);
}

TEST(EqBench2, ReleasedFileLoadsAndPromptDropsRevision) {
    const auto questions = load_eqbench2_questions(testing::shared_path("eqbench-v2/eq_bench_v2_questions_171.json"));
    ASSERT_EQ(questions.size(), 171u);
    const auto& first = questions.front();
    EXPECT_EQ(first.emotions[3], "Annoyed");
    EXPECT_DOUBLE_EQ(first.reference_scores[1], 6.0);  // stored as the string "6"
    const std::string prompt = eqbench2_prompt(first);
    EXPECT_EQ(prompt.find("critique"), std::string::npos);
    EXPECT_EQ(prompt.find("First pass scores"), std::string::npos);
    EXPECT_NE(prompt.find("Remorseful: <score>\nIndifferent: <score>\nAffectionate: <score>\nAnnoyed: <score>\n\n\n[End of answer]"),
              std::string::npos);
    EXPECT_TRUE(prompt.ends_with("\nYour answer:\n"));
}

TEST(EqBench2, MalformedQuestionsFileNamesTheField) {
    const auto path = std::filesystem::temp_directory_path() / "kindred_eqbench2_bad.json";
    { std::ofstream(path) << R"({"7": {"prompt": "p", "reference_answer_fullscale": {"emotion1": "A", "emotion1_score": 1}}})"; }
    try {
        load_eqbench2_questions(path.string());
        FAIL() << "expected an error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("question 7"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("emotion2"), std::string::npos) << error.what();
    }
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace kindred::eval
