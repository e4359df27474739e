// eval/goemotions_eval.cpp — the 28-label readout and scores of an emotion head (see goemotions_eval.h).
#include "eval/goemotions_eval.h"

#include <algorithm>

#include "core/error.h"
#include "data/labels.h"
#include "eval/metrics.h"
#include "eval/multilabel.h"

namespace kindred::eval {

GoEmotionsReport score_goemotions(std::span<const float> probabilities, std::span<const std::string> head_labels,
                                  double threshold, const std::vector<std::vector<int>>& truth) {
    const std::vector<std::size_t> readout = data::goemotions_readout(head_labels);
    const std::size_t classes = head_labels.size(), source_labels = readout.size();
    if (truth.empty() || probabilities.size() != truth.size() * classes)
        fail("GoEmotions scores: {} probabilities for {} examples of {} head labels", probabilities.size(), truth.size(),
             classes);
    std::vector<std::vector<int>> predicted(truth.size());
    for (std::size_t r = 0; r < truth.size(); ++r) {
        for (const int label : truth[r])
            if (label < 0 || static_cast<std::size_t>(label) >= source_labels)
                fail("GoEmotions scores: example {} has label id {}, outside 0..{}", r, label, source_labels - 1);
        const std::vector<int> head = labels_at_threshold(probabilities.subspan(r * classes, classes), threshold);
        for (std::size_t g = 0; g < source_labels; ++g)
            if (std::binary_search(head.begin(), head.end(), static_cast<int>(readout[g])))
                predicted[r].push_back(static_cast<int>(g));
    }
    GoEmotionsReport out = goemotions_report(truth, predicted);
    out.head_space = std::string(data::emotion_space_name(*data::emotion_space_of(head_labels)));
    out.threshold = threshold;
    return out;
}

GoEmotionsReport goemotions_report(const std::vector<std::vector<int>>& truth, const std::vector<std::vector<int>>& predicted) {
    const auto names = data::emotion_space_labels(data::EmotionSpace::GoEmotions);
    const MultilabelReport report = multilabel_report(truth, predicted, static_cast<int>(names.size()));
    GoEmotionsReport out;
    out.examples = static_cast<std::int64_t>(truth.size());
    out.macro_f1 = report.macro_f1;
    out.micro_f1 = report.micro_f1;
    for (std::size_t g = 0; g < names.size(); ++g) {
        const ClassScores& scores = report.labels[g];
        std::int64_t predicted_count = 0;
        for (const auto& set : predicted) predicted_count += std::count(set.begin(), set.end(), static_cast<int>(g));
        out.labels.push_back({std::string(names[g]), scores.precision, scores.recall, scores.f1, scores.support, predicted_count});
    }
    return out;
}

}  // namespace kindred::eval
