// eval/metrics.cpp — counts first (exact integers), ratios last, so results do not depend on order.
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kindred::eval {
namespace {

void check_lengths(std::size_t truth, std::size_t predicted, const char* what) {
    if (truth != predicted) fail("{}: {} true values but {} predictions", what, truth, predicted);
    if (truth == 0) fail("{}: no examples", what);
}

void check_label(int label, int count, std::size_t example, const char* what) {
    if (label < 0 || label >= count) fail("{}: example {} has label {} outside [0, {})", what, example, label, count);
}

double ratio(std::int64_t numerator, std::int64_t denominator) {
    return denominator > 0 ? static_cast<double>(numerator) / static_cast<double>(denominator) : 0.0;  // zero_division=0
}

ClassScores scores(int label, std::int64_t tp, std::int64_t fp, std::int64_t fn) {
    // F1 as 2tp / (2tp + fp + fn): equal to the harmonic mean of precision and recall, and 0 (not NaN)
    // when both are 0, as scikit-learn computes it.
    return {label, ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn), tp + fn};
}

double mean(const std::vector<ClassScores>& classes, double ClassScores::*field) {
    if (classes.empty()) return 0.0;
    double sum = 0.0;
    for (const auto& c : classes) sum += c.*field;
    return sum / static_cast<double>(classes.size());
}

}  // namespace

ConfusionMatrix confusion_matrix(std::span<const int> truth, std::span<const int> predicted, int num_classes) {
    check_lengths(truth.size(), predicted.size(), "confusion matrix");
    if (num_classes <= 0) fail("confusion matrix: {} classes", num_classes);
    ConfusionMatrix matrix{num_classes, std::vector<std::vector<std::int64_t>>(
                                            static_cast<std::size_t>(num_classes), std::vector<std::int64_t>(static_cast<std::size_t>(num_classes)))};
    for (std::size_t i = 0; i < truth.size(); ++i) {
        check_label(truth[i], num_classes, i, "truth");
        check_label(predicted[i], num_classes, i, "prediction");
        ++matrix.counts[static_cast<std::size_t>(truth[i])][static_cast<std::size_t>(predicted[i])];
    }
    return matrix;
}

ClassificationReport classification_report(const ConfusionMatrix& matrix) {
    const auto n = static_cast<std::size_t>(matrix.num_classes);
    if (matrix.counts.size() != n) fail("classification report: confusion matrix is not {}x{}", n, n);
    ClassificationReport report;
    std::int64_t correct = 0;
    for (std::size_t c = 0; c < n; ++c) {
        if (matrix.counts[c].size() != n) fail("classification report: confusion matrix is not {}x{}", n, n);
        std::int64_t true_count = 0, predicted_count = 0;
        for (std::size_t k = 0; k < n; ++k) {
            true_count += matrix.counts[c][k];
            predicted_count += matrix.counts[k][c];
        }
        const std::int64_t tp = matrix.counts[c][c];
        correct += tp;
        report.examples += true_count;
        if (true_count == 0 && predicted_count == 0) continue;  // absent from both: not averaged
        report.classes.push_back(scores(static_cast<int>(c), tp, predicted_count - tp, true_count - tp));
    }
    if (report.examples == 0) fail("classification report: no examples");
    report.accuracy = ratio(correct, report.examples);
    report.macro_precision = mean(report.classes, &ClassScores::precision);
    report.macro_recall = mean(report.classes, &ClassScores::recall);
    report.macro_f1 = mean(report.classes, &ClassScores::f1);
    return report;
}

ClassificationReport classification_report(std::span<const int> truth, std::span<const int> predicted, int num_classes) {
    return classification_report(confusion_matrix(truth, predicted, num_classes));
}

double accuracy(std::span<const int> truth, std::span<const int> predicted) {
    check_lengths(truth.size(), predicted.size(), "accuracy");
    std::int64_t correct = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) correct += truth[i] == predicted[i];
    return ratio(correct, static_cast<std::int64_t>(truth.size()));
}

double macro_f1(std::span<const int> truth, std::span<const int> predicted, int num_classes) {
    return classification_report(truth, predicted, num_classes).macro_f1;
}

MultilabelReport multilabel_report(const std::vector<std::vector<int>>& truth, const std::vector<std::vector<int>>& predicted,
                                   int num_labels) {
    check_lengths(truth.size(), predicted.size(), "multi-label F1");
    if (num_labels <= 0) fail("multi-label F1: {} labels", num_labels);
    const auto n = static_cast<std::size_t>(num_labels);
    std::vector<std::int64_t> tp(n), fp(n), fn(n);
    std::int64_t exact = 0;
    std::vector<char> in_truth(n), in_predicted(n);
    for (std::size_t i = 0; i < truth.size(); ++i) {
        std::fill(in_truth.begin(), in_truth.end(), 0);
        std::fill(in_predicted.begin(), in_predicted.end(), 0);
        for (const int label : truth[i]) {
            check_label(label, num_labels, i, "truth");
            in_truth[static_cast<std::size_t>(label)] = 1;
        }
        for (const int label : predicted[i]) {
            check_label(label, num_labels, i, "prediction");
            in_predicted[static_cast<std::size_t>(label)] = 1;
        }
        exact += in_truth == in_predicted;
        for (std::size_t l = 0; l < n; ++l) {
            tp[l] += in_truth[l] && in_predicted[l];
            fp[l] += !in_truth[l] && in_predicted[l];
            fn[l] += in_truth[l] && !in_predicted[l];
        }
    }
    MultilabelReport report;
    std::int64_t tp_sum = 0, fp_sum = 0, fn_sum = 0;
    for (std::size_t l = 0; l < n; ++l) {
        report.labels.push_back(scores(static_cast<int>(l), tp[l], fp[l], fn[l]));
        tp_sum += tp[l];
        fp_sum += fp[l];
        fn_sum += fn[l];
    }
    report.macro_f1 = mean(report.labels, &ClassScores::f1);
    report.micro_f1 = ratio(2 * tp_sum, 2 * tp_sum + fp_sum + fn_sum);
    report.exact_match = ratio(exact, static_cast<std::int64_t>(truth.size()));
    return report;
}

double mean_squared_error(std::span<const double> truth, std::span<const double> predicted) {
    check_lengths(truth.size(), predicted.size(), "mean squared error");
    double sum = 0.0;
    for (std::size_t i = 0; i < truth.size(); ++i) sum += (truth[i] - predicted[i]) * (truth[i] - predicted[i]);
    return sum / static_cast<double>(truth.size());
}

double mean_absolute_error(std::span<const double> truth, std::span<const double> predicted) {
    check_lengths(truth.size(), predicted.size(), "mean absolute error");
    double sum = 0.0;
    for (std::size_t i = 0; i < truth.size(); ++i) sum += std::fabs(truth[i] - predicted[i]);
    return sum / static_cast<double>(truth.size());
}

}  // namespace kindred::eval
