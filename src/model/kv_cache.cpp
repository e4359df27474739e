// model/kv_cache.cpp — KvCache bookkeeping (see the header for the layout).
#include "model/kv_cache.h"

#include <new>

#include "core/error.h"

namespace kindred::model {

KvCache::KvCache(const ModelConfig& config, std::int64_t capacity_tokens)
    : layers_(config.num_layers), kv_heads_(config.num_kv_heads), head_dim_(config.head_dim),
      capacity_(capacity_tokens), layer_floats_(config.num_kv_heads * config.head_dim * capacity_tokens) {
    if (capacity_tokens < 1 || capacity_tokens > config.context_length)
        fail("KV cache: capacity {} tokens is outside [1, context length {}]", capacity_tokens, config.context_length);
    if (layers_ < 1 || kv_heads_ < 1 || head_dim_ < 1)
        fail("KV cache: config has {} layers, {} kv heads, head_dim {}", layers_, kv_heads_, head_dim_);
    // new float[] leaves pages untouched until written (see header).
    const auto floats = static_cast<std::size_t>(layers_ * 2 * layer_floats_);
    try {
        data_.reset(new float[floats]);
    } catch (const std::bad_alloc&) {
        fail("KV cache: cannot reserve {} MiB for {} tokens; ask for a smaller capacity", floats * sizeof(float) >> 20,
             capacity_tokens);
    }
}

void KvCache::truncate(std::int64_t tokens) {
    if (tokens < 0 || tokens > size_) fail("KV cache: cannot truncate {} cached tokens to {}", size_, tokens);
    size_ = tokens;
}

bool KvCache::fits(const ModelConfig& config) const {
    return config.num_layers == layers_ && config.num_kv_heads == kv_heads_ && config.head_dim == head_dim_;
}

void KvCache::advance(std::int64_t tokens) {
    if (tokens < 0 || size_ + tokens > capacity_)
        fail("KV cache: {} more tokens exceed the capacity of {} (holding {})", tokens, capacity_, size_);
    size_ += tokens;
}

}  // namespace kindred::model
