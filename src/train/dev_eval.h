// train/dev_eval.h — the dev-set evaluation of multi-objective SFT: LM NLL per assistant target
// token, the heads' classification/regression scores at the head sites (train/chat_dataset.h), and
// the safety teacher's KL, in evaluation mode (no dropout, no gradients). The SFT loop calls it
// during and after training, `kindred tune` ranks trials by it, the demo reports it.
//
// Packing: the dev examples are packed in their given order, greedily, into rows of at most
// max_seq_len tokens (an example that does not fit the rest of a row starts the next), one row per
// forward, each run at its packed length (segments keep the documents apart, so no padding is
// needed): deterministic, and independent of any training seed. Data parallel, each rank runs the
// rows DataParallel::runs_row gives it (its teacher computing only their distributions) and the
// ranks sum the rows' results (loss sums, the heads' outputs at the sites), which are then scored
// row by row in order on every rank: the one-process metrics bit for bit, each row run once in the
// job. Collective: every rank calls it.
//
// Metrics (scores from eval/metrics.h, sklearn semantics with zero_division = 0):
//  - nll: Σ −log p(target) over the assistant target tokens / their count.
//  - emotion_macro_f1 / emotion_accuracy: single-label sites (one emotion label, example not
//    multi-label: ED, ESConv); prediction = argmax of the emotion head.
//  - emotion_multilabel_f1: sites of multi-label examples (GoEmotions) or with several labels;
//    predicted set = labels whose probability >= 0.5 · max probability (argmax always in). Macro
//    over the labels present in the truth or the predictions (as the single-label macro-F1 does),
//    so a small dev set is not scored 0 on labels it never contains.
//  - emotion_threshold / emotion_threshold_macro_f1 / emotion_threshold_micro_f1: the same
//    multi-label sites under the head's activation (softmax or sigmoid probabilities) and the one
//    threshold chosen on them (eval/multilabel.h: grid 0.01..0.99, best macro-F1), macro over ALL
//    the head's labels as sklearn scores multi-label data (the GoEmotions benchmark's number).
//  - strategy_accuracy / strategy_macro_f1: strategy-labelled sites; prediction = argmax.
//  - va_mse / va_mae: over the VA-labelled sites and both outputs (valence and arousal values
//    pooled, sklearn's uniform average), so va_mse = mean per site of L_val / 2.
//  - safe_kl: Σ KL(teacher ‖ student at τ) over the assistant target tokens / their count.
// A metric without data (no such sites, head missing or disabled, no teacher) is NaN, written null.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "kernels/matmul.h"
#include "train/chat_dataset.h"
#include "train/data_parallel.h"

namespace kindred::model {
class Decoder;
class TrainableDecoder;
class Heads;
}  // namespace kindred::model

namespace kindred::train {

class SafetyTeacher;
class FrozenResiduals;

struct DevMetrics {
    double nll = NAN;                  // mean NLL per assistant target token
    std::size_t nll_tokens = 0;
    double emotion_macro_f1 = NAN;     // single-label sites (ED, ESConv)
    std::size_t emotion_sites = 0;
    double emotion_multilabel_f1 = NAN;  // GoEmotions
    std::size_t emotion_multilabel_sites = 0;
    double emotion_accuracy = NAN;     // single-label sites
    double emotion_threshold = NAN;    // multi-label sites: the threshold chosen, and its scores
    double emotion_threshold_macro_f1 = NAN, emotion_threshold_micro_f1 = NAN;
    double strategy_accuracy = NAN, strategy_macro_f1 = NAN;
    std::size_t strategy_sites = 0;
    double va_mse = NAN, va_mae = NAN;
    std::size_t va_sites = 0;
    double safe_kl = NAN;              // mean per target token, when a teacher is given
};

nlohmann::json to_json(const DevMetrics& metrics);  // NaN -> null
// DevMetrics from its to_json form (null -> NaN, missing -> default). Throws Error naming `where`.
DevMetrics dev_metrics_from_json(const nlohmann::json& json, const std::string& where);

// Runs `trainer` in evaluation mode over `dev` (no dropout, no gradients). heads / teacher may be
// null. `teacher` caches by index into `dev`, so give it one dedicated to this dev set (never the
// training set's teacher, whose cache holds other examples under the same indices). An empty dev
// set gives all-NaN metrics. Throws Error for max_seq_len outside [1, trainer.max_tokens()], an example longer than
// max_seq_len, or a site label outside its head's classes. `residuals` (train/frozen_cache.h, built
// over exactly `dev`) lets every forward start at the adapters' first layer.
DevMetrics evaluate_dev(model::TrainableDecoder& trainer, const model::Heads* heads, SafetyTeacher* teacher,
                        std::span<const TokenizedExample> dev, std::size_t max_seq_len,
                        const FrozenResiduals* residuals = nullptr, const DataParallel& parallel = DataParallel());

// A saved adapter folder on dev: its PEFT adapter over the frozen `base` (and its heads.* when the
// folder has them), in evaluation mode, as evaluate_dev measures it. An empty `adapter_dir` measures
// the base model itself (an adapter whose B is zero adds exactly nothing). Errors name the folder.
DevMetrics evaluate_adapter_on_dev(model::Decoder& base, const std::string& adapter_dir, SafetyTeacher* teacher,
                                   std::span<const TokenizedExample> dev, std::size_t max_seq_len,
                                   kernels::Precision precision);

}  // namespace kindred::train
