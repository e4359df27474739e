// eval/metrics.h — scores of the emotion head and of classifier-style evaluations: accuracy,
// per-class precision/recall/F1, macro-F1 (single- and multi-label), confusion matrix, and MSE/MAE
// for valence/arousal regression. Semantics match scikit-learn with zero_division=0 (verified by
// tests/goldens/metrics, written by tools/goldens/metrics.py):
//  - single-label: a class with no predictions has precision 0, one with no examples recall 0; macro
//    averages run over the classes present in the truth or the predictions (sklearn's default
//    `labels`), so a class absent from both neither helps nor hurts the score;
//  - multi-label: macro averages run over all `num_labels` labels, a label never true nor predicted
//    scoring F1 0 (sklearn's multilabel-indicator behaviour, which differs from the single-label one).
// Every function throws Error for mismatched lengths, empty input or a label outside [0, num_classes).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kindred::eval {

// counts[t][p]: examples of true class t predicted as p; classes are 0..num_classes-1.
struct ConfusionMatrix {
    int num_classes = 0;
    std::vector<std::vector<std::int64_t>> counts;
};
ConfusionMatrix confusion_matrix(std::span<const int> truth, std::span<const int> predicted, int num_classes);

struct ClassScores {
    int label = 0;
    double precision = 0.0;
    double recall = 0.0;
    double f1 = 0.0;
    std::int64_t support = 0;  // true examples of this class
};

struct ClassificationReport {
    std::vector<ClassScores> classes;  // classes present in truth or predictions, ascending
    double accuracy = 0.0;
    double macro_precision = 0.0;
    double macro_recall = 0.0;
    double macro_f1 = 0.0;
    std::int64_t examples = 0;
};
ClassificationReport classification_report(const ConfusionMatrix& matrix);
ClassificationReport classification_report(std::span<const int> truth, std::span<const int> predicted, int num_classes);

double accuracy(std::span<const int> truth, std::span<const int> predicted);
double macro_f1(std::span<const int> truth, std::span<const int> predicted, int num_classes);

// Each example's set of label ids (in any order; duplicates count once), labels 0..num_labels-1.
struct MultilabelReport {
    std::vector<ClassScores> labels;  // all num_labels labels
    double macro_f1 = 0.0;
    double micro_f1 = 0.0;
    double exact_match = 0.0;  // fraction of examples whose predicted set equals the true set
};
MultilabelReport multilabel_report(const std::vector<std::vector<int>>& truth, const std::vector<std::vector<int>>& predicted,
                                   int num_labels);

double mean_squared_error(std::span<const double> truth, std::span<const double> predicted);
double mean_absolute_error(std::span<const double> truth, std::span<const double> predicted);

}  // namespace kindred::eval
