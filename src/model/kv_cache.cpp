// model/kv_cache.cpp — KvCache bookkeeping and its element types (see the header for the layout).
#include "model/kv_cache.h"

#include <array>
#include <cstring>
#include <new>
#include <utility>

#include "core/error.h"
#include "core/half.h"
#include "kernels/quantize.h"

namespace kindred::model {
namespace {

constexpr std::array<std::pair<std::string_view, DType>, 3> kKvCacheTypes = {
    {{"f32", DType::F32}, {"f16", DType::F16}, {"q8_0", DType::Q8_0}}};

}  // namespace

std::optional<DType> kv_cache_type_from_name(std::string_view name) {
    for (const auto& [spelling, type] : kKvCacheTypes)
        if (spelling == name) return type;
    return std::nullopt;
}

std::string_view kv_cache_type_name(DType type) {
    for (const auto& [spelling, known] : kKvCacheTypes)
        if (known == type) return spelling;
    fail("KV cache: {} is not a KV cache type (f32, f16, q8_0)", dtype_name(type));
}

void check_kv_cache_type(const ModelConfig& config, DType type) {
    const std::string_view name = kv_cache_type_name(type);  // an Error for a type no cache holds
    const auto block = static_cast<std::int64_t>(dtype_info(type).block_size);
    if (config.head_dim % block != 0)
        fail("KV cache: {} needs head_dim to be a multiple of {} (whole blocks per position), the model has {}",
             name, block, config.head_dim);
}

KvCache::KvCache(const ModelConfig& config, std::int64_t capacity_tokens, DType type)
    : layers_(config.num_layers), kv_heads_(config.num_kv_heads), head_dim_(config.head_dim),
      capacity_(capacity_tokens), type_(type) {
    if (capacity_tokens < 1 || capacity_tokens > config.context_length)
        fail("KV cache: capacity {} tokens is outside [1, context length {}]", capacity_tokens, config.context_length);
    if (layers_ < 1 || kv_heads_ < 1 || head_dim_ < 1)
        fail("KV cache: config has {} layers, {} kv heads, head_dim {}", layers_, kv_heads_, head_dim_);
    check_kv_cache_type(config, type);
    row_bytes_ = row_bytes(type, static_cast<std::uint64_t>(head_dim_));
    layer_bytes_ = row_bytes_ * static_cast<std::uint64_t>(kv_heads_ * capacity_);
    // new std::byte[] leaves pages untouched until written (see header).
    try {
        data_.reset(new std::byte[reserved_bytes()]);
    } catch (const std::bad_alloc&) {
        fail("KV cache: cannot reserve {} MiB for {} tokens in {}; ask for a smaller capacity", reserved_bytes() >> 20,
             capacity_tokens, kv_cache_type_name(type));
    }
}

std::byte* KvCache::row(std::int64_t layer, bool values, std::int64_t head, std::int64_t position) {
    const std::uint64_t offset = (2 * static_cast<std::uint64_t>(layer) + (values ? 1 : 0)) * layer_bytes_ +
                                 static_cast<std::uint64_t>(head * capacity_ + position) * row_bytes_;
    return data_.get() + offset;
}

void KvCache::store(std::int64_t layer, std::int64_t position, const float* keys, const float* values) {
    for (std::int64_t g = 0; g < kv_heads_; ++g)
        for (const bool is_values : {false, true}) {
            const float* from = (is_values ? values : keys) + g * head_dim_;
            std::byte* to = row(layer, is_values, g, position);
            switch (type_) {
                case DType::F16:
                    for (std::int64_t i = 0; i < head_dim_; ++i) {
                        const std::uint16_t half = fp32_to_fp16(from[i]);
                        std::memcpy(to + 2 * i, &half, sizeof half);
                    }
                    break;
                case DType::Q8_0: quantize_row_q8_0(from, to, head_dim_); break;
                default: std::memcpy(to, from, row_bytes_); break;
            }
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
