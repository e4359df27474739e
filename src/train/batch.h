// train/batch.h — turns tokenized SFT examples into the rows the trainer consumes: several
// conversations packed into one row of seq_len tokens, with positions restarting at 0 per
// conversation and segment ids that keep attention inside each one (kernels/attention.h), then
// rows grouped into micro-batches and micro-batches into one optimizer step.
//
// Order: each epoch visits every example once, in a permutation drawn from (seed, epoch) with a
// fixed generator (splitmix64 + Fisher-Yates, not std::shuffle, whose result differs between
// standard libraries), so a seed gives the same stream everywhere. Rows are filled greedily in that
// order; an example that does not fit the rest of a row starts the next row (never split), and the
// row's tail is padding (pad token, target kIgnoreTarget, a segment of its own).
//
// Resuming: DataPosition (epoch, index into that epoch's permutation) is all the stream's state; a
// Packer built at a saved position produces exactly what the original would have produced next.
//
// Loss: each step's `target_tokens` is the number of targets across all its micro-batches; the
// trainer divides every micro-batch's summed cross-entropy by it, so gradient accumulation gives
// the same gradient as one large batch (per-token mean over the step), whatever the packing. The
// head losses are normalised the same way by the step's site counts (`emotion_sites`, ...). An
// example with no LM target but head sites (GoEmotions) packs like any other, so a step's
// `target_tokens` can be 0 (the trainer then skips the NLL term; it is not an error).
//
// An example of several documents (TokenizedExample::document_starts: a preference pair's chosen
// and rejected sequences) is packed whole, each document with positions from 0 and a segment of
// its own, so one row computes exactly what the documents computed one by one would.
//
// Placements: every example packed into a micro-batch is recorded (row, offset of its first token
// in the row, index into the packer's example span), in row order, so the trainer can find each
// example's head sites (row offset + HeadSite::position) and its teacher targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/trainable_decoder.h"
#include "train/chat_dataset.h"

namespace kindred::train {

struct DataPosition {
    std::uint64_t epoch = 0;
    std::uint64_t index = 0;  // next example of the epoch's permutation, in [0, example count]
    bool operator==(const DataPosition&) const = default;
};

struct PackingOptions {
    std::size_t seq_len = 0;               // tokens per row
    std::size_t rows_per_micro_batch = 1;
    std::size_t micro_batches_per_step = 1;  // gradient accumulation
    std::uint64_t seed = 0;
    std::int32_t pad_id = 0;
};

// Where one example sits in a micro-batch.
struct Placement {
    std::size_t row = 0;
    std::size_t offset = 0;   // token index of the example's first token within the row
    std::size_t example = 0;  // index into the span the Packer was built on
};

// Row-major [rows x seq_len] arrays.
struct MicroBatch {
    std::size_t rows = 0;
    std::size_t seq_len = 0;
    std::vector<std::int32_t> tokens;
    std::vector<std::int32_t> targets;      // kIgnoreTarget where no loss is taken
    std::vector<std::int32_t> positions;    // 0, 1, ... per conversation (padding too)
    std::vector<std::int32_t> segment_ids;  // per row: 0, 0, ..., 1, 1, ...: never decreasing
    std::size_t target_tokens = 0;
    std::size_t examples = 0;  // conversations packed in
    std::vector<Placement> placements;  // every example packed in, in row order (size == examples)
    // Head-site counts by label kind over the packed examples (the head losses' normalisers).
    std::size_t emotion_sites = 0;
    std::size_t strategy_sites = 0;
    std::size_t va_sites = 0;
};

struct StepBatch {
    std::vector<MicroBatch> micro_batches;
    std::size_t target_tokens = 0;  // the step's loss normaliser: sum over its micro-batches (may be 0)
    std::size_t emotion_sites = 0;  // likewise for the heads
    std::size_t strategy_sites = 0;
    std::size_t va_sites = 0;
};

// Row `row` of a micro-batch as the trainer takes it.
model::TrainBatch row_batch(const MicroBatch& micro, std::size_t row);

// Writes an example's positions (0, 1, ... restarting at each document start) and segment ids
// (`segment` for its first document, one more for each further one) for its tokens; returns the
// next free segment id.
std::int32_t write_positions(const TokenizedExample& example, std::int32_t segment, std::int32_t* positions,
                             std::int32_t* segment_ids);

// Evaluation packing, deterministic and independent of any seed: examples in their given order,
// greedily into rows of at most max_seq_len tokens (one that does not fit the rest of a row starts
// the next). Each row lists indices into `examples`. Used by passes that visit every example once
// (dev evaluation, the frozen-layer cache, DPO's reference). Throws Error naming the example's line
// when one is empty or longer than max_seq_len.
std::vector<std::vector<std::size_t>> pack_in_order(std::span<const TokenizedExample> examples, std::size_t max_seq_len);
// One such row as the trainer takes it, at its packed length (no padding: segments keep the
// documents apart); offsets receives each example's first token in the row.
model::TrainBatch ordered_row(std::span<const TokenizedExample> examples, const std::vector<std::size_t>& row,
                              std::vector<std::size_t>& offsets);

// The permutation of [0, count) for (seed, epoch); exposed for tests.
std::vector<std::uint32_t> epoch_order(std::size_t count, std::uint64_t seed, std::uint64_t epoch);

class Packer {
public:
    // Keeps a reference to `examples`, which must outlive the packer. Throws Error for no
    // examples, an example longer than seq_len, zero sizes, or a position past the data.
    Packer(std::span<const TokenizedExample> examples, const PackingOptions& options, DataPosition start = {});

    MicroBatch next_micro_batch();
    StepBatch next_step();
    // Where the next row starts; save it with the checkpoint of the step just taken.
    DataPosition position() const { return position_; }

private:
    void fill_row(MicroBatch& batch, std::size_t row);
    const TokenizedExample& peek();  // the example at position_, drawing a new epoch's order when due
    void advance();

    std::span<const TokenizedExample> examples_;
    PackingOptions options_;
    DataPosition position_;
    std::vector<std::uint32_t> order_;
    std::uint64_t order_epoch_ = 0;
    bool have_order_ = false;
};

}  // namespace kindred::train
