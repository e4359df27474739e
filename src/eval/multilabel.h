// eval/multilabel.h — from a multi-label head's per-label probabilities to predicted label sets,
// and the one decision threshold chosen on dev.
//
// Rule at a threshold t: every label with probability >= t, and the most probable label always
// (first of equal maxima). Every GoEmotions comment has at least one label (neutral is one), so an
// empty prediction is always wrong; keeping the top label makes the rule the same for a softmax
// head (whose probabilities share one unit of mass, so a fixed t may pass none) and a sigmoid head.
// Without a chosen threshold the relative rule applies: labels whose probability is at least half
// the top one's (dev_eval's long-standing default for softmax heads).
//
// The threshold is ONE number for all labels, chosen on dev from the grid 0.01, 0.02, …, 0.99 to
// maximise macro-F1 over all labels (sklearn's multi-label semantics, eval/metrics.h); ties go to
// the lowest. One shared number is what the GoEmotions paper tunes (it reports 0.3); per-label
// thresholds would fit 28 numbers to dev and overstate the dev score.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kindred::eval {

// Labels of one row [classes] of probabilities at threshold t (NaN: the relative rule), ascending.
std::vector<int> labels_at_threshold(std::span<const float> probabilities, double threshold);

struct ThresholdChoice {
    double threshold = 0.0;
    double macro_f1 = 0.0;
    double micro_f1 = 0.0;
};

// probabilities: rows x classes, row-major; truth: each row's label set. Throws Error for
// mismatched sizes or no rows.
ThresholdChoice choose_threshold(std::span<const float> probabilities, std::int64_t classes,
                                 const std::vector<std::vector<int>>& truth);

}  // namespace kindred::eval
