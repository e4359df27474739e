// model/kv_cache.h — keys and values of every layer for the tokens seen so far, stored as fp32
// (exact, the default), fp16 or ggml's Q8_0 (`--kv-cache`, docs/models.md).
// Layout per layer: [kv_head][position][head_dim] elements of type(), so that attention reads each
// head's keys contiguously; a Q8_0 row of head_dim elements is head_dim / 32 whole blocks (34
// bytes each: an fp16 scale and 32 int8), so every position starts on a block. Memory is reserved
// for `capacity` tokens up front but pages are only touched as positions fill (no zero-fill), so a
// large capacity costs address space, not RSS; fp16 needs half the bytes of fp32, Q8_0 17/64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "core/dtype.h"
#include "formats/model_config.h"

namespace kindred::model {

// The element types a KV cache may store, by the names `--kv-cache` takes: "f32", "f16", "q8_0".
std::optional<DType> kv_cache_type_from_name(std::string_view name);
std::string_view kv_cache_type_name(DType type);
// Throws Error unless `type` is one of those and, for Q8_0, config's head_dim a multiple of 32 (a
// position's row must be whole blocks).
void check_kv_cache_type(const ModelConfig& config, DType type);

class KvCache {
public:
    // Throws Error when capacity is not in [1, config.context_length] or check_kv_cache_type refuses
    // `type`.
    KvCache(const ModelConfig& config, std::int64_t capacity_tokens, DType type = DType::F32);

    std::int64_t size() const { return size_; }
    std::int64_t capacity() const { return capacity_; }
    DType type() const { return type_; }
    // Bytes reserved for keys and values of every layer at full capacity.
    std::uint64_t reserved_bytes() const { return 2 * static_cast<std::uint64_t>(layers_) * layer_bytes_; }
    void clear() { size_ = 0; }
    // Forgets positions [tokens, size()); throws Error when tokens > size() or negative.
    void truncate(std::int64_t tokens);

    // For the decoder: stores layer l's keys and values of the token at `position`, each
    // [kv_heads x head_dim] fp32, converted to type() (fp16 rounds to nearest even; Q8_0 as
    // ggml's quantize_row_q8_0_ref, kernels/quantize.h).
    void store(std::int64_t layer, std::int64_t position, const float* keys, const float* values);
    // Layer l's keys/values in type(): kv head g at position p starts at element
    // g * head_stride() + p * head_dim (kernels::AttentionShape::kv_type reads them).
    const void* keys(std::int64_t layer) const { return data_.get() + layer * layer_bytes_ * 2; }
    const void* values(std::int64_t layer) const { return data_.get() + layer * layer_bytes_ * 2 + layer_bytes_; }
    std::int64_t head_stride() const { return capacity_ * head_dim_; }
    // Whether this cache was shaped for `config` (same layers, kv heads, head_dim).
    bool fits(const ModelConfig& config) const;
    // Records that positions [size(), size() + tokens) were written.
    void advance(std::int64_t tokens);

private:
    std::byte* row(std::int64_t layer, bool values, std::int64_t head, std::int64_t position);

    std::int64_t layers_, kv_heads_, head_dim_, capacity_;
    DType type_;
    std::uint64_t row_bytes_;    // one position of one head
    std::uint64_t layer_bytes_;  // one layer's keys (or values)
    std::int64_t size_ = 0;
    std::unique_ptr<std::byte[]> data_;
};

}  // namespace kindred::model
