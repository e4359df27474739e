// Classification and regression metrics against scikit-learn goldens (tools/goldens/metrics.py),
// plus the errors for mismatched or out-of-range input.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/metrics.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

// Counts are exact integers on both sides; ratios are one division each, and the averages differ
// only in summation order (numpy sums pairwise), so a few ulps of 1.0 is the whole budget.
constexpr double kTolerance = 1e-14;

const nlohmann::json& goldens() {
    static const nlohmann::json document = [] {
        std::ifstream in(testing::source_path("tests/goldens/metrics/cases.json"));
        return nlohmann::json::parse(in);
    }();
    return document;
}

TEST(Metrics, SingleLabelMatchesScikitLearn) {
    const auto& cases = goldens().at("single_label");
    ASSERT_GE(cases.size(), 10u);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const auto truth = c.at("truth").get<std::vector<int>>();
        const auto predicted = c.at("predicted").get<std::vector<int>>();
        const int num_classes = c.at("num_classes").get<int>();

        const ConfusionMatrix matrix = confusion_matrix(truth, predicted, num_classes);
        EXPECT_EQ(matrix.counts, c.at("confusion").get<std::vector<std::vector<std::int64_t>>>());

        const ClassificationReport report = classification_report(matrix);
        const auto labels = c.at("labels").get<std::vector<int>>();
        ASSERT_EQ(report.classes.size(), labels.size());
        for (std::size_t i = 0; i < labels.size(); ++i) {
            EXPECT_EQ(report.classes[i].label, labels[i]);
            EXPECT_NEAR(report.classes[i].precision, c.at("precision")[i].get<double>(), kTolerance);
            EXPECT_NEAR(report.classes[i].recall, c.at("recall")[i].get<double>(), kTolerance);
            EXPECT_NEAR(report.classes[i].f1, c.at("f1")[i].get<double>(), kTolerance);
            EXPECT_EQ(report.classes[i].support, c.at("support")[i].get<std::int64_t>());
        }
        EXPECT_NEAR(report.accuracy, c.at("accuracy").get<double>(), kTolerance);
        EXPECT_NEAR(report.macro_precision, c.at("macro_precision").get<double>(), kTolerance);
        EXPECT_NEAR(report.macro_recall, c.at("macro_recall").get<double>(), kTolerance);
        EXPECT_NEAR(report.macro_f1, c.at("macro_f1").get<double>(), kTolerance);
        EXPECT_EQ(report.examples, static_cast<std::int64_t>(truth.size()));
        EXPECT_NEAR(accuracy(truth, predicted), c.at("accuracy").get<double>(), kTolerance);
        EXPECT_NEAR(macro_f1(truth, predicted, num_classes), c.at("macro_f1").get<double>(), kTolerance);
    }
}

TEST(Metrics, MultiLabelMatchesScikitLearn) {
    const auto& cases = goldens().at("multi_label");
    ASSERT_GE(cases.size(), 5u);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const auto truth = c.at("truth").get<std::vector<std::vector<int>>>();
        const auto predicted = c.at("predicted").get<std::vector<std::vector<int>>>();
        const int num_labels = c.at("num_labels").get<int>();
        const MultilabelReport report = multilabel_report(truth, predicted, num_labels);
        ASSERT_EQ(report.labels.size(), static_cast<std::size_t>(num_labels));
        for (std::size_t l = 0; l < report.labels.size(); ++l) {
            EXPECT_NEAR(report.labels[l].f1, c.at("f1")[l].get<double>(), kTolerance);
        }
        EXPECT_NEAR(report.macro_f1, c.at("macro_f1").get<double>(), kTolerance);
        EXPECT_NEAR(report.micro_f1, c.at("micro_f1").get<double>(), kTolerance);
        EXPECT_NEAR(report.exact_match, c.at("exact_match").get<double>(), kTolerance);
    }
}

TEST(Metrics, RegressionMatchesScikitLearn) {
    for (const auto& c : goldens().at("regression")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const auto truth = c.at("truth").get<std::vector<double>>();
        const auto predicted = c.at("predicted").get<std::vector<double>>();
        // Sums of up to 400 terms in a different order (numpy pairwise): relative 1e-13 covers it.
        EXPECT_NEAR(mean_squared_error(truth, predicted), c.at("mse").get<double>(), 1e-13 * c.at("mse").get<double>());
        EXPECT_NEAR(mean_absolute_error(truth, predicted), c.at("mae").get<double>(), 1e-13 * c.at("mae").get<double>());
    }
}

TEST(Metrics, DuplicateLabelsInASetCountOnce) {
    const MultilabelReport report = multilabel_report({{1, 1, 0}}, {{0, 1}}, 2);
    EXPECT_EQ(report.macro_f1, 1.0);
    EXPECT_EQ(report.exact_match, 1.0);
}

TEST(Metrics, BadInputThrows) {
    const std::vector<int> two{0, 1}, three{0, 1, 1}, none;
    EXPECT_THROW(accuracy(two, three), Error);
    EXPECT_THROW(accuracy(none, none), Error);
    EXPECT_THROW(confusion_matrix(two, two, 0), Error);
    try {
        confusion_matrix(std::vector<int>{0, 5}, two, 3);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "truth: example 1 has label 5 outside [0, 3)");
    }
    EXPECT_THROW(confusion_matrix(two, std::vector<int>{-1, 0}, 3), Error);
    EXPECT_THROW(multilabel_report({{0}}, {{2}}, 2), Error);
    EXPECT_THROW(multilabel_report({}, {}, 2), Error);
    EXPECT_THROW(mean_squared_error(std::vector<double>{1.0}, std::vector<double>{}), Error);
    EXPECT_THROW(classification_report(ConfusionMatrix{2, {{0, 0}, {0, 0}}}), Error);  // no examples
    EXPECT_THROW(classification_report(ConfusionMatrix{2, {{0, 0}}}), Error);          // wrong shape
}

}  // namespace
}  // namespace kindred::eval
