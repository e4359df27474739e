// eval/multilabel.cpp — threshold decision rule and its choice on dev (see multilabel.h).
#include "eval/multilabel.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/metrics.h"

namespace kindred::eval {
namespace {

// Grid of thresholds, in hundredths.
constexpr int kFirstStep = 1, kLastStep = 99;

}  // namespace

std::vector<int> labels_at_threshold(std::span<const float> probabilities, double threshold) {
    if (probabilities.empty()) fail("labels_at_threshold: no probabilities");
    const auto top = static_cast<int>(std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin());
    const double floor = std::isnan(threshold) ? 0.5 * probabilities[static_cast<std::size_t>(top)] : threshold;
    std::vector<int> out;
    for (std::size_t c = 0; c < probabilities.size(); ++c)
        if (probabilities[c] >= floor || static_cast<int>(c) == top) out.push_back(static_cast<int>(c));
    return out;
}

ThresholdChoice choose_threshold(std::span<const float> probabilities, std::int64_t classes,
                                 const std::vector<std::vector<int>>& truth) {
    if (classes < 1 || truth.empty() || probabilities.size() != truth.size() * static_cast<std::size_t>(classes))
        fail("choose_threshold: {} probabilities for {} rows of {} classes", probabilities.size(), truth.size(), classes);
    ThresholdChoice best;
    best.macro_f1 = -1.0;
    std::vector<std::vector<int>> predicted(truth.size());
    const auto c = static_cast<std::size_t>(classes);
    for (int step = kFirstStep; step <= kLastStep; ++step) {
        const double threshold = step / 100.0;
        for (std::size_t r = 0; r < truth.size(); ++r)
            predicted[r] = labels_at_threshold(probabilities.subspan(r * c, c), threshold);
        const MultilabelReport report = multilabel_report(truth, predicted, static_cast<int>(classes));
        if (report.macro_f1 > best.macro_f1) best = {threshold, report.macro_f1, report.micro_f1};
    }
    return best;
}

}  // namespace kindred::eval
