// train/head_losses.cpp — the heads' losses on a packed row (see head_losses.h).
#include "train/head_losses.h"

#include <cmath>

#include "core/error.h"
#include "kernels/loss.h"

namespace kindred::train {

float scale_of(double lambda, std::size_t count) {
    return lambda > 0.0 && count > 0 ? static_cast<float>(lambda) / static_cast<float>(count) : 0.0f;
}

double mean_or_nan(double sum, float scale, std::size_t count) {
    return scale != 0.0f ? sum / static_cast<double>(count) : std::nan("");
}

void add_rows_at(std::span<float> dhidden, std::int64_t hidden, std::span<const std::size_t> positions,
                 std::span<const float> rows) {
    for (std::size_t i = 0; i < positions.size(); ++i) {
        float* dst = dhidden.data() + positions[i] * static_cast<std::size_t>(hidden);
        const float* src = rows.data() + i * static_cast<std::size_t>(hidden);
        for (std::int64_t j = 0; j < hidden; ++j) dst[j] += src[j];
    }
}

HeadLosses::HeadLosses(std::span<const TokenizedExample> examples, std::int64_t hidden, model::Heads* heads,
                       std::vector<float> emotion_weights)
    : examples_(examples), hidden_(hidden), heads_(heads), emotion_weights_(std::move(emotion_weights)) {}

void HeadLosses::run(const MicroBatch& micro, std::size_t row, std::span<const float> hidden, std::span<float> dhidden,
                     const HeadScales& scales, HeadSums& sums) {
    if (!scales.any()) return;
    if (heads_ == nullptr) fail("head losses: a head's weight is set but no heads exist");
    collect_sites(micro, row);
    if (scales.emotion != 0.0f) sums.emotion += emotion(hidden, dhidden, scales.emotion);
    if (scales.strategy != 0.0f) sums.strategy += strategy(hidden, dhidden, scales.strategy);
    if (scales.va != 0.0f) sums.va += valence_arousal(hidden, dhidden, scales.va);
}

// The row's head sites, with their positions shifted by their example's offset.
void HeadLosses::collect_sites(const MicroBatch& micro, std::size_t row) {
    sites_.clear();
    for (const auto& placement : micro.placements) {
        if (placement.row != row) continue;
        const auto& example = examples_[placement.example];
        for (const auto& site : example.sites) {
            const auto position = placement.offset + static_cast<std::size_t>(site.position);
            if (site.position < 0 || static_cast<std::size_t>(site.position) >= example.tokens.size() ||
                position >= micro.seq_len)
                fail("example at line {}: head site position {} outside its {} tokens", example.line, site.position,
                     example.tokens.size());
            sites_.push_back({position, &site, example.line});
        }
    }
}

// Gathers the hidden rows of the selected sites into pooled_ (n x hidden) and their positions.
template <typename Select>
std::int64_t HeadLosses::gather(std::span<const float> hidden, Select select) {
    positions_.clear();
    pooled_.clear();
    for (const auto& ref : sites_) {
        if (!select(ref)) continue;
        positions_.push_back(ref.position);
        const auto row = hidden.begin() + static_cast<std::ptrdiff_t>(ref.position) * hidden_;
        pooled_.insert(pooled_.end(), row, row + hidden_);
    }
    return static_cast<std::int64_t>(positions_.size());
}

void HeadLosses::run_head(model::Head head, std::int64_t n) {
    logits_.assign(static_cast<std::size_t>(n * heads_->outputs(head)), 0.0f);
    heads_->forward(head, pooled_.data(), n, logits_.data());
    dlogits_.assign(logits_.size(), 0.0f);
}

// The head's backward with dlogits_, then d(pooled) added into the gathered hidden rows.
void HeadLosses::head_backward(model::Head head, std::int64_t n, std::span<float> dhidden) {
    dpooled_.assign(pooled_.size(), 0.0f);
    heads_->backward(head, pooled_.data(), dlogits_.data(), n, dpooled_.data());
    add_rows_at(dhidden, hidden_, positions_, dpooled_);
}

// Softmax head: soft cross-entropy against the uniform distribution over the site's labels, each
// label's share multiplied by its class weight. Sigmoid head: binary cross-entropy per label (1 for
// the site's labels, 0 for the rest), the class weight as the positive term's weight (kernels/loss.h).
double HeadLosses::emotion(std::span<const float> hidden, std::span<float> dhidden, float scale) {
    const std::int64_t n = gather(hidden, [](const SiteRef& ref) { return !ref.site->emotions.empty(); });
    if (n == 0) return 0.0;
    const std::int64_t classes = heads_->outputs(model::Head::Emotion);
    const bool sigmoid = heads_->config().emotion_activation == model::EmotionActivation::Sigmoid;
    soft_targets_.assign(static_cast<std::size_t>(n * classes), 0.0f);
    std::size_t i = 0;
    for (const auto& ref : sites_) {
        const auto& labels = ref.site->emotions;
        if (labels.empty()) continue;
        for (const auto label : labels) {
            if (label < 0 || label >= classes)
                fail("example at line {}: emotion label id {} outside the head's {} classes", ref.line, label, classes);
            const auto at = i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(label);
            if (sigmoid) {
                soft_targets_[at] = 1.0f;
            } else {
                const float weight = emotion_weights_.empty() ? 1.0f : emotion_weights_[static_cast<std::size_t>(label)];
                soft_targets_[at] += weight / static_cast<float>(labels.size());
            }
        }
        ++i;
    }
    run_head(model::Head::Emotion, n);
    double loss = 0.0;
    if (sigmoid) {
        const float* pos_weight = emotion_weights_.empty() ? nullptr : emotion_weights_.data();
        loss = kernels::sigmoid_cross_entropy_forward(logits_.data(), soft_targets_.data(), pos_weight, n, classes);
        kernels::sigmoid_cross_entropy_backward(dlogits_.data(), logits_.data(), soft_targets_.data(), pos_weight, n,
                                                classes, scale);
    } else {
        loss = kernels::soft_cross_entropy_forward(logits_.data(), soft_targets_.data(), n, classes);
        kernels::soft_cross_entropy_backward(dlogits_.data(), logits_.data(), soft_targets_.data(), n, classes, scale);
    }
    head_backward(model::Head::Emotion, n, dhidden);
    return loss;
}

double HeadLosses::strategy(std::span<const float> hidden, std::span<float> dhidden, float scale) {
    const std::int64_t n = gather(hidden, [](const SiteRef& ref) { return ref.site->strategy >= 0; });
    if (n == 0) return 0.0;
    const std::int64_t classes = heads_->outputs(model::Head::Strategy);
    labels_.clear();
    for (const auto& ref : sites_) {
        if (ref.site->strategy < 0) continue;
        if (ref.site->strategy >= classes)
            fail("example at line {}: strategy id {} outside the head's {} classes", ref.line, ref.site->strategy, classes);
        labels_.push_back(ref.site->strategy);
    }
    run_head(model::Head::Strategy, n);
    const double loss =
        kernels::softmax_cross_entropy_forward(nullptr, logits_.data(), labels_.data(), nullptr, n, classes).loss;
    kernels::softmax_cross_entropy_backward(dlogits_.data(), logits_.data(), labels_.data(), nullptr, n, classes, scale);
    head_backward(model::Head::Strategy, n, dhidden);
    return loss;
}

// (v̂ − v)² + (â − a)² per site.
double HeadLosses::valence_arousal(std::span<const float> hidden, std::span<float> dhidden, float scale) {
    const std::int64_t n = gather(hidden, [](const SiteRef& ref) { return ref.site->has_va; });
    if (n == 0) return 0.0;
    soft_targets_.clear();
    for (const auto& ref : sites_) {
        if (!ref.site->has_va) continue;
        soft_targets_.push_back(ref.site->valence);
        soft_targets_.push_back(ref.site->arousal);
    }
    run_head(model::Head::ValenceArousal, n);
    const double loss = kernels::mse_forward(logits_.data(), soft_targets_.data(), 2 * n);
    kernels::mse_backward(dlogits_.data(), logits_.data(), soft_targets_.data(), 2 * n, scale);
    head_backward(model::Head::ValenceArousal, n, dhidden);
    return loss;
}

}  // namespace kindred::train
