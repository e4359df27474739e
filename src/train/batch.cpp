#include "train/batch.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace kindred::train {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, bound) by rejection, so no index is favoured by modulo bias.
std::uint64_t below(std::uint64_t& state, std::uint64_t bound) {
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        const std::uint64_t r = splitmix64(state);
        if (r >= threshold) return r % bound;
    }
}

}  // namespace

model::TrainBatch row_batch(const MicroBatch& micro, std::size_t row) {
    const auto begin = static_cast<std::ptrdiff_t>(row * micro.seq_len);
    const auto end = begin + static_cast<std::ptrdiff_t>(micro.seq_len);
    return {{micro.tokens.begin() + begin, micro.tokens.begin() + end},
            {micro.targets.begin() + begin, micro.targets.begin() + end},
            {micro.positions.begin() + begin, micro.positions.begin() + end},
            {micro.segment_ids.begin() + begin, micro.segment_ids.begin() + end},
            {},
            {}};
}

std::int32_t write_positions(const TokenizedExample& example, std::int32_t segment, std::int32_t* positions,
                             std::int32_t* segment_ids) {
    std::size_t document_start = 0;
    auto next_start = example.document_starts.begin();
    for (std::size_t t = 0; t < example.tokens.size(); ++t) {
        if (next_start != example.document_starts.end() && t == *next_start) {
            document_start = t;
            ++next_start;
            ++segment;
        }
        positions[t] = static_cast<std::int32_t>(t - document_start);
        segment_ids[t] = segment;
    }
    return segment + 1;
}

std::vector<std::vector<std::size_t>> pack_in_order(std::span<const TokenizedExample> examples, std::size_t max_seq_len) {
    std::vector<std::vector<std::size_t>> rows;
    std::size_t used = max_seq_len;
    for (std::size_t i = 0; i < examples.size(); ++i) {
        const std::size_t n = examples[i].tokens.size();
        if (n == 0 || n > max_seq_len)
            fail("packing: the example of line {} has {} tokens, outside [1, max_seq_len {}]", examples[i].line, n,
                 max_seq_len);
        if (used + n > max_seq_len) {
            rows.emplace_back();
            used = 0;
        }
        rows.back().push_back(i);
        used += examples[i].tokens.size();
    }
    return rows;
}

model::TrainBatch ordered_row(std::span<const TokenizedExample> examples, const std::vector<std::size_t>& row,
                              std::vector<std::size_t>& offsets) {
    model::TrainBatch batch;
    offsets.clear();
    std::int32_t segment = 0;
    for (const std::size_t index : row) {
        const auto& example = examples[index];
        const std::size_t offset = batch.tokens.size();
        offsets.push_back(offset);
        batch.tokens.insert(batch.tokens.end(), example.tokens.begin(), example.tokens.end());
        batch.targets.insert(batch.targets.end(), example.targets.begin(), example.targets.end());
        batch.positions.resize(batch.tokens.size());
        batch.segment_ids.resize(batch.tokens.size());
        segment = write_positions(example, segment, batch.positions.data() + offset, batch.segment_ids.data() + offset);
    }
    return batch;
}

std::vector<std::uint32_t> epoch_order(std::size_t count, std::uint64_t seed, std::uint64_t epoch) {
    if (count > std::numeric_limits<std::uint32_t>::max()) fail("packing: {} examples is more than supported", count);
    std::vector<std::uint32_t> order(count);
    for (std::size_t i = 0; i < count; ++i) order[i] = static_cast<std::uint32_t>(i);
    std::uint64_t mix = epoch;
    std::uint64_t state = seed ^ splitmix64(mix);
    for (std::size_t i = count; i > 1; --i) {
        const auto j = static_cast<std::size_t>(below(state, i));
        std::swap(order[i - 1], order[j]);
    }
    return order;
}

Packer::Packer(std::span<const TokenizedExample> examples, const PackingOptions& options, DataPosition start)
    : examples_(examples), options_(options), position_(start) {
    if (examples_.empty()) fail("packing: the dataset has no examples");
    if (options_.seq_len == 0 || options_.rows_per_micro_batch == 0 || options_.micro_batches_per_step == 0)
        fail("packing: seq_len, rows per micro-batch and micro-batches per step must be positive");
    for (const auto& example : examples_) {
        if (example.tokens.size() > options_.seq_len || example.tokens.empty())
            fail("packing: the example of line {} has {} tokens, outside [1, seq_len {}]", example.line,
                 example.tokens.size(), options_.seq_len);
        for (std::size_t i = 0; i < example.document_starts.size(); ++i) {
            const std::size_t first = example.document_starts[i];
            if (first == 0 || first >= example.tokens.size() || (i > 0 && first <= example.document_starts[i - 1]))
                fail("packing: the example of line {} has a document start {} outside (0, {}) or out of order",
                     example.line, first, example.tokens.size());
        }
        if (example.targets.size() != example.tokens.size())
            fail("packing: the example of line {} has {} targets for {} tokens", example.line, example.targets.size(),
                 example.tokens.size());
        for (const auto& site : example.sites) {
            if (site.position < 0 || static_cast<std::size_t>(site.position) >= example.tokens.size())
                fail("packing: the example of line {} has a head site at {}, outside its {} tokens", example.line,
                     site.position, example.tokens.size());
        }
    }
    if (position_.index > examples_.size())
        fail("packing: data position {} is past the {} examples of the dataset (was it changed since the checkpoint?)",
             position_.index, examples_.size());
    if (position_.index == examples_.size()) position_ = {position_.epoch + 1, 0};
}

const TokenizedExample& Packer::peek() {
    if (!have_order_ || order_epoch_ != position_.epoch) {
        order_ = epoch_order(examples_.size(), options_.seed, position_.epoch);
        order_epoch_ = position_.epoch;
        have_order_ = true;
    }
    return examples_[order_[position_.index]];
}

void Packer::advance() {
    if (++position_.index == examples_.size()) position_ = {position_.epoch + 1, 0};
}

void Packer::fill_row(MicroBatch& batch, std::size_t row) {
    const std::size_t base = row * options_.seq_len;
    std::size_t used = 0;
    std::int32_t segment = 0;
    while (true) {
        const TokenizedExample& example = peek();
        const std::size_t n = example.tokens.size();
        if (used + n > options_.seq_len) break;
        std::copy(example.tokens.begin(), example.tokens.end(), batch.tokens.begin() + static_cast<std::ptrdiff_t>(base + used));
        std::copy(example.targets.begin(), example.targets.end(),
                  batch.targets.begin() + static_cast<std::ptrdiff_t>(base + used));
        segment = write_positions(example, segment, batch.positions.data() + base + used,
                                  batch.segment_ids.data() + base + used);
        batch.placements.push_back({row, used, order_[position_.index]});
        used += n;
        batch.target_tokens += example.target_count;
        ++batch.examples;
        for (const auto& site : example.sites) {
            batch.emotion_sites += site.emotions.empty() ? 0 : 1;
            batch.strategy_sites += site.strategy >= 0 ? 1 : 0;
            batch.va_sites += site.has_va ? 1 : 0;
        }
        advance();
    }
    // Padding: its own segment, so it never attends into (or is attended from) a conversation.
    for (std::size_t t = used; t < options_.seq_len; ++t) {
        batch.tokens[base + t] = options_.pad_id;
        batch.targets[base + t] = kIgnoreTarget;
        batch.positions[base + t] = static_cast<std::int32_t>(t - used);
        batch.segment_ids[base + t] = segment;
    }
}

MicroBatch Packer::next_micro_batch() {
    MicroBatch batch;
    batch.rows = options_.rows_per_micro_batch;
    batch.seq_len = options_.seq_len;
    const std::size_t size = batch.rows * batch.seq_len;
    batch.tokens.resize(size);
    batch.targets.resize(size);
    batch.positions.resize(size);
    batch.segment_ids.resize(size);
    for (std::size_t row = 0; row < batch.rows; ++row) fill_row(batch, row);
    return batch;
}

StepBatch Packer::next_step() {
    StepBatch step;
    for (std::size_t i = 0; i < options_.micro_batches_per_step; ++i) {
        step.micro_batches.push_back(next_micro_batch());
        const auto& micro = step.micro_batches.back();
        step.target_tokens += micro.target_tokens;
        step.emotion_sites += micro.emotion_sites;
        step.strategy_sites += micro.strategy_sites;
        step.va_sites += micro.va_sites;
    }
    return step;
}

}  // namespace kindred::train
