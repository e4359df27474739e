// train/frozen_cache.cpp — building, checking and reading the frozen-layer residual cache (see
// frozen_cache.h).
#include "train/frozen_cache.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/split.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'K', 'N', 'D', 'R', 'R', 'E', 'S', '1'};
constexpr std::size_t kFields = 5;  // layer, hidden, examples, total tokens, fingerprint
constexpr std::size_t kHeaderBytes = sizeof kMagic + kFields * sizeof(std::uint64_t);

std::uint64_t fingerprint(std::span<const TokenizedExample> examples, std::int64_t layer, std::int64_t hidden,
                          const FrozenCacheOptions& options) {
    std::string bytes = fmt::format("{}\n{}\n{}\n{}\n", options.model_identity, options.precision, layer, hidden);
    for (const auto& example : examples) {
        const auto count = static_cast<std::uint32_t>(example.tokens.size());
        bytes.append(reinterpret_cast<const char*>(&count), sizeof count);
        bytes.append(reinterpret_cast<const char*>(example.tokens.data()), example.tokens.size() * sizeof(std::int32_t));
    }
    return data::fnv1a64(bytes);
}

std::array<std::uint64_t, kFields> header_fields(std::int64_t layer, std::int64_t hidden, std::size_t examples,
                                                 std::size_t tokens, std::uint64_t print) {
    return {static_cast<std::uint64_t>(layer), static_cast<std::uint64_t>(hidden), examples, tokens, print};
}

// Computes and atomically writes one shard (a slice of the examples, in order).
void write_shard(model::TrainableDecoder& trainer, std::span<const TokenizedExample> shard, std::int64_t layer,
                 std::int64_t hidden, std::uint64_t print, const std::string& path, const FrozenCacheOptions& options,
                 Progress* progress, std::int64_t& rows_done, double& tokens_done) {
    std::size_t tokens = 0;
    for (const auto& example : shard) tokens += example.tokens.size();
    write_file_atomically(path, [&](const ByteSink& sink) {
        sink({reinterpret_cast<const std::uint8_t*>(kMagic), sizeof kMagic});
        const auto fields = header_fields(layer, hidden, shard.size(), tokens, print);
        sink({reinterpret_cast<const std::uint8_t*>(fields.data()), sizeof fields});
        std::vector<std::size_t> offsets;
        for (const auto& row : pack_in_order(shard, options.max_seq_len)) {
            const model::TrainBatch batch = ordered_row(shard, row, offsets);
            const std::span<const float> residual = trainer.residual_entering(batch, layer);
            sink({reinterpret_cast<const std::uint8_t*>(residual.data()), residual.size_bytes()});
            tokens_done += static_cast<double>(batch.tokens.size());
            if (progress != nullptr) progress->update(++rows_done, {}, tokens_done);
        }
    });
}

}  // namespace

FrozenResiduals FrozenResiduals::open_or_build(model::TrainableDecoder& trainer,
                                               std::span<const TokenizedExample> examples, std::int64_t layer,
                                               const FrozenCacheOptions& options) {
    if (layer < 1) fail("frozen-layer cache: layer {} has no frozen layer below it", layer);
    if (examples.empty()) fail("frozen-layer cache: no examples");
    const std::int64_t hidden = trainer.output_rows().cols;
    FrozenResiduals out;
    out.layer_ = layer;
    out.hidden_ = hidden;
    const std::uint64_t print = fingerprint(examples, layer, hidden, options);
    fs::create_directories(options.dir);
    const std::size_t shard_count = (examples.size() + kShardExamples - 1) / kShardExamples;
    const auto shard_span = [&](std::size_t s) {
        return examples.subspan(s * kShardExamples, std::min(kShardExamples, examples.size() - s * kShardExamples));
    };
    const auto shard_path = [&](std::size_t s) {
        return (fs::path(options.dir) / fmt::format("{:016x}-{}.residuals", print, s)).string();
    };

    // The missing shards, computed with one progress line over all of them.
    std::vector<std::size_t> missing;
    std::size_t missing_tokens = 0;
    std::int64_t missing_rows = 0;
    for (std::size_t s = 0; s < shard_count; ++s) {
        if (fs::exists(shard_path(s))) continue;
        missing.push_back(s);
        const auto shard = shard_span(s);
        missing_rows += static_cast<std::int64_t>(pack_in_order(shard, options.max_seq_len).size());
        for (const auto& example : shard) missing_tokens += example.tokens.size();
    }
    if (!missing.empty()) {
        std::optional<Progress> progress;
        if (options.progress) {
            ProgressOptions progress_options;
            progress_options.label = options.label;
            progress_options.unit = "tok";
            progress.emplace(missing_rows, progress_options);
            progress->message(fmt::format(
                "computing the frozen layers 0..{} once: {} of {} shards, {} tokens, {:.1f} MB, into {}", layer - 1,
                missing.size(), shard_count, missing_tokens,
                static_cast<double>(missing_tokens * static_cast<std::size_t>(hidden) * sizeof(float)) / 1e6, options.dir));
        }
        std::int64_t rows_done = 0;
        double tokens_done = 0.0;
        for (const std::size_t s : missing)
            write_shard(trainer, shard_span(s), layer, hidden, print, shard_path(s), options, progress ? &*progress : nullptr,
                        rows_done, tokens_done);
        if (progress) progress->finish();
        out.built_ = missing.size();
    }

    for (std::size_t s = 0; s < shard_count; ++s) {
        const auto shard = shard_span(s);
        std::size_t tokens = 0;
        for (const auto& example : shard) tokens += example.tokens.size();
        MappedFile& file = out.shards_.emplace_back(shard_path(s));
        const std::size_t expected_bytes = kHeaderBytes + tokens * static_cast<std::size_t>(hidden) * sizeof(float);
        std::array<std::uint64_t, kFields> stored{};
        if (file.size() >= kHeaderBytes) std::memcpy(stored.data(), file.data() + sizeof kMagic, sizeof stored);
        if (file.size() != expected_bytes || std::memcmp(file.data(), kMagic, sizeof kMagic) != 0 ||
            stored != header_fields(layer, hidden, shard.size(), tokens, print))
            fail("{}: not the frozen-layer cache shard its name promises ({} bytes, expected {}); remove it to recompute it",
                 file.path(), file.size(), expected_bytes);
        const auto* data = reinterpret_cast<const float*>(file.data() + kHeaderBytes);
        for (const auto& example : shard) {
            out.blocks_.push_back(data);
            out.tokens_.push_back(example.tokens.size());
            data += example.tokens.size() * static_cast<std::size_t>(hidden);
        }
    }
    return out;
}

std::span<const float> FrozenResiduals::residual(std::size_t example) const {
    if (example >= blocks_.size()) fail("frozen-layer cache: example {} of {}", example, blocks_.size());
    return {blocks_[example], tokens_[example] * static_cast<std::size_t>(hidden_)};
}

void FrozenResiduals::append(model::TrainBatch& batch, std::size_t example) const {
    const auto block = residual(example);
    batch.residual.insert(batch.residual.end(), block.begin(), block.end());
}

void FrozenResiduals::append_padding(model::TrainBatch& batch, std::size_t tokens, std::int64_t hidden) {
    batch.residual.resize(batch.residual.size() + tokens * static_cast<std::size_t>(hidden), 0.0f);
}

}  // namespace kindred::train
