// model/kv_cache.h — keys and values of every layer for the tokens seen so far, fp32.
// Layout per layer: [kv_head][position][head_dim], so that attention reads each head's keys
// contiguously. Memory is reserved for `capacity` tokens up front but pages are only touched
// as positions fill (no zero-fill), so a large capacity costs address space, not RSS.
#pragma once

#include <cstdint>
#include <memory>

#include "formats/model_config.h"

namespace kindred::model {

class KvCache {
public:
    // Throws Error when capacity is not in [1, config.context_length].
    KvCache(const ModelConfig& config, std::int64_t capacity_tokens);

    std::int64_t size() const { return size_; }
    std::int64_t capacity() const { return capacity_; }
    void clear() { size_ = 0; }
    // Forgets positions [tokens, size()); throws Error when tokens > size() or negative.
    void truncate(std::int64_t tokens);

    // For the decoder: layer l's keys/values, kv head g at position p at g * head_stride() + p * head_dim.
    float* keys(std::int64_t layer) { return data_.get() + layer * layer_floats_ * 2; }
    float* values(std::int64_t layer) { return keys(layer) + layer_floats_; }
    std::int64_t head_stride() const { return capacity_ * head_dim_; }
    // Whether this cache was shaped for `config` (same layers, kv heads, head_dim).
    bool fits(const ModelConfig& config) const;
    // Records that positions [size(), size() + tokens) were written.
    void advance(std::int64_t tokens);

private:
    std::int64_t layers_, kv_heads_, head_dim_, capacity_;
    std::int64_t layer_floats_;
    std::int64_t size_ = 0;
    std::unique_ptr<float[]> data_;
};

}  // namespace kindred::model
