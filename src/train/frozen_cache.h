// train/frozen_cache.h — partial fine-tuning's one-time pass: when the adapters start at layer F
// (adapter.first_layer, model/lora_adapters.h), the layers below F are the frozen base, so the
// residual stream entering F is a function of each example's tokens alone. It is computed once per
// example (TrainableDecoder::residual_entering, evaluation mode, packed rows of max_seq_len) and
// kept in a file; every training and dev forward then starts at layer F from it
// (TrainBatch::residual), which skips F/L of the layers' forward in every epoch. A packed document's
// residual does not depend on its neighbours, so these are the values the full forward computes up
// to the summation order of products over differently packed rows (sgemm blocking: ~1e-6
// relative), and training from the cache follows training without it (tests/train/test_emotion_head.cpp).
//
// Files: <dir>/<fingerprint as 16 hex digits>-<shard>.residuals, one per kShardExamples examples,
// each written atomically, so an interrupted build resumes at the first missing shard. A shard is a
// 48-byte header (magic "KNDRRES1", then little-endian u64 layer, hidden, examples, total tokens,
// fingerprint of the whole set) and each of its examples' [tokens x hidden] fp32 blocks in example
// order. The fingerprint is FNV-1a over the model's identity (its path and size), the compute
// precision, the layer, the hidden size and every example's tokens, so a cache is reused exactly
// when it holds these values (another run of the same data and model, a resumed run) and anything
// else gets its own files. Shards are read through memory maps: 4·hidden bytes per token (SmolLM2:
// 2.3 KB), so the page cache, not the process, holds them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "train/chat_dataset.h"

namespace kindred::model {
class TrainableDecoder;
struct TrainBatch;
}  // namespace kindred::model

namespace kindred::train {

struct FrozenCacheOptions {
    std::string dir;             // created when missing
    std::string model_identity;  // e.g. "<path> <size in bytes>"; part of the fingerprint
    std::string precision;       // the compute precision's name; part of the fingerprint
    std::size_t max_seq_len = 512;
    bool progress = true;
    std::string label = "cache";  // the progress line's first word
};

class FrozenResiduals {
public:
    static constexpr std::size_t kShardExamples = 4096;

    // Opens the matching shards under options.dir, computing and writing the missing ones.
    // `trainer`'s adapters must start at `layer` (> 0). Throws Error for an example longer than
    // max_seq_len, a shard that does not hold what its name promises (it is recomputed only if
    // removed: a corrupt cache is reported, not silently replaced), or I/O failure.
    static FrozenResiduals open_or_build(model::TrainableDecoder& trainer, std::span<const TokenizedExample> examples,
                                         std::int64_t layer, const FrozenCacheOptions& options);

    std::int64_t layer() const { return layer_; }
    std::int64_t hidden() const { return hidden_; }
    std::size_t examples() const { return blocks_.size(); }
    const std::string& path() const { return shards_.front().path(); }  // the first shard's
    std::size_t shards() const { return shards_.size(); }
    std::size_t built_shards() const { return built_; }  // computed by this call rather than read

    // Example i's block [tokens x hidden].
    std::span<const float> residual(std::size_t example) const;
    std::size_t tokens(std::size_t example) const { return tokens_.at(example); }
    // Appends example i's block to batch.residual (packing a row in token order); `tokens` more
    // zero rows stand for padding (a segment of its own that no loss reads).
    void append(model::TrainBatch& batch, std::size_t example) const;
    static void append_padding(model::TrainBatch& batch, std::size_t tokens, std::int64_t hidden);

private:
    std::vector<MappedFile> shards_;
    std::int64_t layer_ = 0, hidden_ = 0;
    std::vector<const float*> blocks_;  // per example, into its shard's map
    std::vector<std::size_t> tokens_;
    std::size_t built_ = 0;
};

}  // namespace kindred::train
