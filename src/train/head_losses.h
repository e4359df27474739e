// train/head_losses.h — the heads' training losses on one packed row, shared by the SFT loop (the
// L_emo, L_strat, L_val terms of docs/training.md) and the DPO loop (the same terms as auxiliary
// losses, docs/dpo.md): each example's head sites (train/chat_dataset.h) are found in the row, the
// final hidden states at the sites are gathered, every active head computes its loss there, and its
// gradient with respect to the pooled states is added back into d(hidden) at the sites' rows, so it
// flows into the adapted trunk. Losses per site: soft cross-entropy against the uniform
// distribution over the site's emotion labels (a sigmoid emotion head: binary cross-entropy per
// label), optionally class-weighted, cross-entropy against the strategy id,
// (v̂ − v)² + (â − a)². Scratch buffers live here, so a step allocates only while they grow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/heads.h"
#include "train/batch.h"
#include "train/chat_dataset.h"

namespace kindred::train {

// Per-element weight of each head's sum: λ / (the head's labelled sites over the whole step);
// 0 = the head is not computed.
struct HeadScales {
    float emotion = 0.0f, strategy = 0.0f, va = 0.0f;
    bool any() const { return emotion != 0.0f || strategy != 0.0f || va != 0.0f; }
};

// Each head's unnormalised loss sum.
struct HeadSums {
    double emotion = 0.0, strategy = 0.0, va = 0.0;
};

// A loss term's per-element weight in one step: λ / (the term's count over the whole step), 0 when
// the term is inactive or its count is 0 (then it is not computed at all). float λ / float count,
// so that λ = 1 gives exactly the 1/count plain SFT always used.
float scale_of(double lambda, std::size_t count);
// A term's normalised value for metrics: NaN when it was not computed this step (scale 0).
double mean_or_nan(double sum, float scale, std::size_t count);

// dhidden[positions[i]] += rows[i] for every i (rows [n x hidden]).
void add_rows_at(std::span<float> dhidden, std::int64_t hidden, std::span<const std::size_t> positions,
                 std::span<const float> rows);

class HeadLosses {
public:
    // `examples` is the span the Packer placed (placements index it); heads may be null when every
    // scale given to run() is 0.
    // `emotion_weights`: one per emotion class (empty: unweighted; train/sft.h's
    // emotion_class_weights), applied as the emotion loss's class weights.
    HeadLosses(std::span<const TokenizedExample> examples, std::int64_t hidden, model::Heads* heads,
               std::vector<float> emotion_weights = {});

    // The active heads' losses at the sites of `row` of `micro`: adds their sums into `sums`, the
    // heads' parameter gradients into the heads and d(loss)/d(hidden) into `dhidden` ([seq_len x
    // hidden]), in the order emotion, strategy, valence/arousal. Throws Error (naming the
    // example's line) for a site outside its example or a label outside its head's classes.
    void run(const MicroBatch& micro, std::size_t row, std::span<const float> hidden, std::span<float> dhidden,
             const HeadScales& scales, HeadSums& sums);

private:
    struct SiteRef {
        std::size_t position;  // in the row
        const HeadSite* site;
        std::size_t line;  // the example's, for errors
    };

    void collect_sites(const MicroBatch& micro, std::size_t row);
    template <typename Select>
    std::int64_t gather(std::span<const float> hidden, Select select);
    void run_head(model::Head head, std::int64_t n);
    void head_backward(model::Head head, std::int64_t n, std::span<float> dhidden);
    double emotion(std::span<const float> hidden, std::span<float> dhidden, float scale);
    double strategy(std::span<const float> hidden, std::span<float> dhidden, float scale);
    double valence_arousal(std::span<const float> hidden, std::span<float> dhidden, float scale);

    std::span<const TokenizedExample> examples_;
    std::int64_t hidden_;
    model::Heads* heads_;
    std::vector<SiteRef> sites_;
    std::vector<std::size_t> positions_;
    std::vector<float> pooled_, dpooled_, logits_, dlogits_, soft_targets_;
    std::vector<std::int32_t> labels_;
    std::vector<float> emotion_weights_;
};

}  // namespace kindred::train
