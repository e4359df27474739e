// kernels/attention.h — grouped-query causal attention of new queries over a KV cache.
// Query t sits at position past + t and sees cache positions [max(0, past + t - window + 1), past + t]
// (window 0 = unlimited). Query head h reads kv head h / (heads / kv_heads). Optional per-head sink
// logits join the softmax denominator only (gpt-oss). Softmax runs in fp32 with the max subtracted.
#pragma once

#include <cstdint>

namespace kindred::kernels {

struct AttentionShape {
    std::int64_t tokens = 0;          // new queries
    std::int64_t past = 0;            // cache positions before the first query
    std::int64_t heads = 0;
    std::int64_t kv_heads = 0;
    std::int64_t head_dim = 0;
    std::int64_t kv_head_stride = 0;  // floats between consecutive kv heads in k and v
    float scale = 1.0f;               // usually head_dim^-0.5
    std::int64_t window = 0;          // sliding window length, 0 = full causal
    const float* sinks = nullptr;     // [heads] or null
};

// out, q: [tokens x heads x head_dim]; k, v: kv head g, position p at g * kv_head_stride + p * head_dim
// (positions [0, past + tokens) must be filled).
void attention_forward(float* out, const float* q, const float* k, const float* v, const AttentionShape& shape);

}  // namespace kindred::kernels
