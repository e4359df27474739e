// train/data_parallel.h — what a training loop does to run data parallel over a dist::Communicator
// (docs/distributed.md). Every rank packs the same global step (the Packer is deterministic), runs
// the rows whose index in the step is ≡ its rank (mod ranks), and the ranks then sum their
// gradients and loss sums, so each rank holds the one-process step's values (up to the order of
// the additions) and applies the same AdamW update. Each loss term's normaliser is the whole
// step's count, known before any row runs, so the sum of the ranks' scaled gradients is exactly
// the one-process objective's gradient however rows fall on ranks.
//
// Without a communicator, or with one of size 1, every row is this process's and sums are no-ops.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "dist/communicator.h"
#include "train/chat_dataset.h"

namespace kindred::train {

class DataParallel {
public:
    explicit DataParallel(dist::Communicator* communicator = nullptr) : communicator_(communicator) {}

    int rank() const { return communicator_ ? communicator_->rank() : 0; }
    int size() const { return communicator_ ? communicator_->size() : 1; }
    bool root() const { return rank() == 0; }
    bool active() const { return size() > 1; }

    // The rank that runs row `index` of a step (rows counted over the step's micro-batches in order).
    int rank_of_row(std::size_t index) const { return static_cast<int>(index % static_cast<std::size_t>(size())); }
    // Whether this rank runs row `index` of a step.
    bool runs_row(std::size_t index) const { return rank_of_row(index) == rank(); }

    // In-place sums over the ranks, in buckets of at most bucket_floats elements, so a large
    // gradient does not need one message (and one staging buffer in the backend) of its full size.
    void sum(std::span<float> values) const;
    void sum(std::span<double> values) const;

    // Throws Error on every rank unless all ranks pass the same value (names `what` and the ranks).
    void require_same(const std::string& what, const std::string& value) const;
    // Rank 0's `value` on every rank (a name one rank must choose for all, such as a run folder
    // named by the time).
    std::string root_value(std::string value) const;
    // Waits for every rank (after rank 0 has written the run's files, so they exist when any rank returns).
    void barrier() const;

    static constexpr std::size_t bucket_floats = std::size_t{1} << 22;  // 16 MiB of fp32

private:
    dist::Communicator* communicator_;
};

// A cheap identity of a (possibly many-GB) file for the start-up comparison across ranks: its size
// and FNV-1a 64 of its first and last 4 MiB (a GGUF's or safetensors' header, metadata and tensor
// table are at the start). Error naming the file when it cannot be read.
std::string file_fingerprint(const std::string& path);
// The same for a model: a GGUF file's, or an HF checkpoint directory's config.json and every
// *.safetensors file in it, in name order.
std::string model_fingerprint(const std::string& path);

// The identity of tokenized training data (every token, target, head label and teacher token), so
// ranks that tokenized different files or with different tokenizers refuse to start.
std::string examples_fingerprint(std::span<const TokenizedExample> examples);

}  // namespace kindred::train
