#include "train/shared_prefix.h"

#include <algorithm>

#include "core/error.h"

namespace kindred::train {

SharedPrefixRow::SharedPrefixRow(const model::TrainBatch& row, std::span<const PairAt> placed, const PairDataset& pairs,
                                 bool share) {
    const std::size_t n = row.tokens.size();
    if (!share || row.positions.size() != n || row.segment_ids.size() != n) {
        batch_ = row;
        source_.resize(n);
        for (std::size_t i = 0; i < n; ++i) source_[i] = static_cast<std::int64_t>(i);
        return;
    }
    source_.assign(n, -1);
    // Copies packed positions [begin, end) as one compact document `segment` continuing `prefix`.
    const auto keep = [&](std::size_t begin, std::size_t end, std::int32_t segment, std::int32_t prefix) {
        for (std::size_t i = begin; i < end; ++i) {
            source_[i] = static_cast<std::int64_t>(batch_.tokens.size());
            batch_.tokens.push_back(row.tokens[i]);
            batch_.targets.push_back(row.targets[i]);
            batch_.positions.push_back(row.positions[i]);
            batch_.segment_ids.push_back(segment);
            batch_.prefix_segment_ids.push_back(prefix);
        }
    };
    std::int32_t segment = 0;
    for (const PairAt& at : placed) {
        if (at.pair >= pairs.pairs.size()) fail("{}: pair {} is outside the {} pairs", pairs.path, at.pair, pairs.pairs.size());
        const std::size_t chosen = pairs.pairs[at.pair].chosen_length;
        const std::size_t length = pairs.examples[at.pair].tokens.size();
        const std::size_t begin = at.offset, middle = begin + chosen, end = begin + length;
        if (chosen == 0 || chosen >= length || end > n || row.segment_ids[middle - 1] == row.segment_ids[middle])
            fail("{} line {}: the pair does not lie in its packed row as two documents", pairs.path,
                 pairs.pairs[at.pair].line);
        // The longest common prefix of the two documents, leaving each at least one token of its own.
        const std::size_t limit = std::min(chosen, length - chosen) - 1;
        std::size_t shared = 0;
        while (shared < limit && row.tokens[begin + shared] == row.tokens[middle + shared] &&
               row.positions[begin + shared] == row.positions[middle + shared])
            ++shared;
        if (shared == 0) {
            keep(begin, middle, segment, segment);
            keep(middle, end, segment + 1, segment + 1);
            segment += 2;
            continue;
        }
        keep(begin, begin + shared, segment, segment);
        keep(begin + shared, middle, segment + 1, segment);
        keep(middle + shared, end, segment + 2, segment);
        for (std::size_t i = 0; i < shared; ++i) source_[middle + i] = source_[begin + i];
        segment += 3;
    }
}

void SharedPrefixRow::expand(std::span<const float> compact, std::vector<float>& full, std::int64_t dim) const {
    const auto width = static_cast<std::size_t>(dim);
    full.assign(source_.size() * width, 0.0f);
    for (std::size_t i = 0; i < source_.size(); ++i)
        if (source_[i] >= 0)
            std::copy_n(compact.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(source_[i]) * width),
                        width, full.begin() + static_cast<std::ptrdiff_t>(i * width));
}

void SharedPrefixRow::fold(std::span<const float> full, std::vector<float>& compact, std::int64_t dim) const {
    const auto width = static_cast<std::size_t>(dim);
    compact.assign(batch_.tokens.size() * width, 0.0f);
    for (std::size_t i = 0; i < source_.size(); ++i) {
        if (source_[i] < 0) continue;
        float* out = compact.data() + static_cast<std::size_t>(source_[i]) * width;
        const float* in = full.data() + i * width;
        for (std::size_t k = 0; k < width; ++k) out[k] += in[k];
    }
}

}  // namespace kindred::train
