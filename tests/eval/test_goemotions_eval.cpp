// Tests for eval/multilabel.h (the threshold decision rule and its choice on dev) and
// eval/goemotions_eval.h (a head's scores in GoEmotions' 28 labels) against scikit-learn on fixed
// probabilities (tests/goldens/emotion_head/goemotions_f1.json, written by
// tools/goldens/emotion_head.py), for a 28-label head and a 27-label Kindred head read out into 28.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/goemotions_eval.h"
#include "eval/multilabel.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

TEST(LabelsAtThreshold, KeepsTheTopLabelAndAppliesTheRelativeRuleWithoutAThreshold) {
    const std::vector<float> p{0.10f, 0.45f, 0.30f, 0.05f};
    EXPECT_EQ(labels_at_threshold(p, 0.25), (std::vector<int>{1, 2}));
    EXPECT_EQ(labels_at_threshold(p, 0.9), (std::vector<int>{1}));  // nothing passes: the top label still counts
    EXPECT_EQ(labels_at_threshold(p, 0.3), (std::vector<int>{1, 2}));  // >=, in double: 0.3f is above 0.3
    // No threshold: p >= half the top one (0.225).
    EXPECT_EQ(labels_at_threshold(p, std::numeric_limits<double>::quiet_NaN()), (std::vector<int>{1, 2}));
    EXPECT_THROW(labels_at_threshold({}, 0.5), Error);
}

TEST(ChooseThreshold, PicksTheLowestThresholdOfTheBestMacroF1) {
    // Two labels, three rows. Label 1 is true in rows 0 and 2 at probabilities 0.40 and 0.20; row 1
    // has it at 0.10 and false. Any t in (0.10, 0.20] predicts it exactly where true (label 0 is the
    // top label of rows 0 and 1, true there): macro-F1 1 first reached at t = 0.11.
    const std::vector<float> p{0.60f, 0.40f, 0.90f, 0.10f, 0.80f, 0.20f};
    const std::vector<std::vector<int>> truth{{0, 1}, {0}, {0, 1}};
    const ThresholdChoice choice = choose_threshold(p, 2, truth);
    EXPECT_DOUBLE_EQ(choice.threshold, 0.11);
    EXPECT_DOUBLE_EQ(choice.macro_f1, 1.0);
    EXPECT_DOUBLE_EQ(choice.micro_f1, 1.0);
    EXPECT_THROW(choose_threshold(p, 3, truth), Error);
}

// sklearn computes the same counts and divides the same way; only the order of the macro
// average's 28-term sum can differ (~1e-16).
TEST(ScoreGoEmotions, MatchesScikitLearn) {
    std::ifstream in(testing::source_path("tests/goldens/emotion_head/goemotions_f1.json"));
    const auto golden = nlohmann::json::parse(in);
    for (const auto& c : golden["cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        const auto head = c["head_labels"].get<std::vector<std::string>>();
        const double threshold = c["threshold"].is_null() ? std::numeric_limits<double>::quiet_NaN() : c["threshold"].get<double>();
        const auto report = score_goemotions(c["probabilities"].get<std::vector<float>>(), head, threshold,
                                             c["truth"].get<std::vector<std::vector<int>>>());
        EXPECT_EQ(report.head_space, head.size() == 28 ? "goemotions" : "kindred");
        EXPECT_NEAR(report.macro_f1, c["macro_f1"].get<double>(), 1e-12);
        EXPECT_NEAR(report.micro_f1, c["micro_f1"].get<double>(), 1e-12);
        ASSERT_EQ(report.labels.size(), 28u);
        std::int64_t predicted = 0;
        for (const auto& set : c["predicted"]) predicted += static_cast<std::int64_t>(set.size());
        std::int64_t ours = 0;
        for (std::size_t g = 0; g < 28; ++g) {
            EXPECT_NEAR(report.labels[g].precision, c["precision"][g].get<double>(), 1e-12) << g;
            EXPECT_NEAR(report.labels[g].recall, c["recall"][g].get<double>(), 1e-12) << g;
            EXPECT_NEAR(report.labels[g].f1, c["f1"][g].get<double>(), 1e-12) << g;
            EXPECT_EQ(report.labels[g].support, c["support"][g].get<std::int64_t>()) << g;
            ours += report.labels[g].predicted;
        }
        EXPECT_EQ(ours, predicted);
    }
}

TEST(ScoreGoEmotions, RejectsWhatItCannotScore) {
    const std::vector<std::string> unknown{"happy", "sad"};
    EXPECT_THROW(score_goemotions(std::vector<float>{0.5f, 0.5f}, unknown, 0.5, {{0}}), Error);
    std::vector<std::string> goemotions;
    for (int i = 0; i < 28; ++i) goemotions.push_back("x");
    const std::vector<float> one_row(28, 0.1f);
    EXPECT_THROW(score_goemotions(one_row, goemotions, 0.5, {{0}}), Error);  // "x" is no label set
}

}  // namespace
}  // namespace kindred::eval
