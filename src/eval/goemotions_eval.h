// eval/goemotions_eval.h — an emotion head scored as the GoEmotions benchmark scores it: in the
// original 28-label space, macro- and micro-F1 and per-label precision/recall/F1 with
// scikit-learn's multi-label semantics (eval/metrics.h: macro over all 28 labels, zero_division 0).
//
// The head's predictions are label sets at one threshold (eval/multilabel.h: probability >= t, the
// top label always). A head trained in the GoEmotions space (heads.emotion_labels: goemotions)
// predicts the 28 labels directly. A head in Kindred's 27-label space is read out into the 28
// explicitly (data::goemotions_readout): GoEmotions label g is predicted when the Kindred label g
// maps to is, so a merged pair (amusement and joy -> joy) is predicted together and the pair's
// distinction costs that head precision: the number says what the product's head knows about
// GoEmotions' distinctions, not what it could learn.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kindred::eval {

struct GoEmotionsLabelScore {
    std::string label;
    double precision = 0.0, recall = 0.0, f1 = 0.0;
    std::int64_t support = 0;  // true examples of the label
    std::int64_t predicted = 0;
};

struct GoEmotionsReport {
    std::string head_space;  // "goemotions" or "kindred"
    double threshold = 0.0;  // NaN: the relative rule (no threshold stored)
    std::int64_t examples = 0;
    double macro_f1 = 0.0, micro_f1 = 0.0;
    std::vector<GoEmotionsLabelScore> labels;  // 28, emotions.txt order
};

// probabilities: examples x head labels (row-major, under the head's activation); truth: each
// example's GoEmotions label ids (0..27). Error for mismatched sizes, no examples, a truth id
// outside 0..27, or a head whose labels are neither space.
GoEmotionsReport score_goemotions(std::span<const float> probabilities, std::span<const std::string> head_labels,
                                  double threshold, const std::vector<std::vector<int>>& truth);

// The scores of predicted label sets (GoEmotions ids 0..27) against the truth, whoever predicted
// them (score_goemotions for a head, the judge's check in eval/judge_emotions.h); head_space and
// threshold are left for the caller. Error for mismatched sizes, no examples or an id outside 0..27.
GoEmotionsReport goemotions_report(const std::vector<std::vector<int>>& truth, const std::vector<std::vector<int>>& predicted);

}  // namespace kindred::eval
