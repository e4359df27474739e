// train/shared_prefix.h — a packed row of preference pairs with each pair's shared prefix run once.
// A pair is packed as two documents, prompt + chosen and prompt + rejected (preference_pairs.h).
// Their common prefix (the prompt, and any first completion tokens both share) has the same hidden
// states in both documents (same tokens, positions from 0, causal attention within a document), so
// the layers need it once: the compact row holds the prefix, the chosen document's tail and the
// rejected document's tail, each tail continuing the prefix (model::TrainBatch::prefix_segment_ids;
// the rejected tail does not see the chosen one). For the bench's pairs (192-token prompt, two
// 64-token completions) that is 320 tokens through the layers instead of 512, computing the same
// loss and gradients (sums in another order).
//
// Everything per token stays in the packed row's layout: expand() gives every position of it the
// hidden state of its compact position (a prefix position of the rejected document: the chosen
// document's), so log-probs, losses and head sites read the packed row as before; fold() sums the
// packed row's gradients back onto the compact positions (a shared position gets both documents').
// Padding is dropped (its hidden states expand to zeros: no target or site reads them).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/trainable_decoder.h"
#include "train/preference_pairs.h"

namespace kindred::train {

// A pair packed into the row: its first token's index in the row and its index in the dataset.
struct PairAt {
    std::size_t offset = 0;
    std::size_t pair = 0;
};

class SharedPrefixRow {
public:
    // `row`: the packed row; `placed`: its pairs in row order. share = false keeps the row as it is
    // (for trainers that would not compute the same values, TrainableDecoder::shares_prefixes_exactly).
    // Throws Error when a pair does not lie in the row as two documents of its lengths.
    SharedPrefixRow(const model::TrainBatch& row, std::span<const PairAt> placed, const PairDataset& pairs,
                    bool share);

    // What the trainer runs.
    const model::TrainBatch& batch() const { return batch_; }
    // full [row tokens x dim] = the compact rows [batch tokens x dim] at every packed position.
    void expand(std::span<const float> compact, std::vector<float>& full, std::int64_t dim) const;
    // compact [batch tokens x dim] = the sums of full's rows over the packed positions of each.
    void fold(std::span<const float> full, std::vector<float>& compact, std::int64_t dim) const;

private:
    model::TrainBatch batch_;
    std::vector<std::int64_t> source_;  // per packed position: its compact position, −1 for padding
};

}  // namespace kindred::train
