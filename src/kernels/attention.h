// kernels/attention.h — grouped-query causal attention of new queries over a KV cache.
// Query t sits at position past + t and sees cache positions [max(0, past + t - window + 1), past + t]
// (window 0 = unlimited). Query head h reads kv head h / (heads / kv_heads). Optional per-head sink
// logits join the softmax denominator only (gpt-oss). Softmax runs in fp32 with the max subtracted.
// Training packs several documents into one row: with segment ids a query also sees only the
// positions of its own document (and, with prefix segment ids, of one earlier document it continues).
//
// The backward pass recomputes the probabilities instead of saving them. Saved, they would cost
// heads x tokens² floats per layer (tokens 512, 9 heads: 9.4 MB fp32 per layer, 283 MB for 30
// layers) and spare one of the backward's five sgemm-sized products (q·kᵀ; dout·vᵀ, dS·k, dSᵀ·q
// and Pᵀ·dout remain). Recomputed, the backward needs per-thread score blocks and per-thread
// partial dk/dv (2 x kv_heads x positions x head_dim floats per thread: 786 KB for 512 tokens,
// 3 kv heads of 64).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/matmul.h"

namespace kindred::kernels {

struct AttentionShape {
    std::int64_t tokens = 0;          // new queries
    std::int64_t past = 0;            // cache positions before the first query
    std::int64_t heads = 0;
    std::int64_t kv_heads = 0;
    std::int64_t head_dim = 0;
    std::int64_t kv_head_stride = 0;  // floats between consecutive kv heads in k and v
    // Floats between consecutive positions of a kv head; 0 = head_dim (a cache, heads outermost).
    // Training passes the projections' [tokens x kv_heads x head_dim] rows as they are:
    // kv_head_stride = head_dim, kv_position_stride = kv_heads * head_dim.
    std::int64_t kv_position_stride = 0;
    float scale = 1.0f;               // usually head_dim^-0.5
    std::int64_t window = 0;          // sliding window length, 0 = full causal
    const float* sinks = nullptr;     // [heads] or null
    // [past + tokens] or null: the document of every position; ids never decrease (documents are
    // contiguous). Query t sees position p only when segment_ids[p] == segment_ids[past + t].
    const std::int32_t* segment_ids = nullptr;
    // [past + tokens] or null, with segment_ids: the query at position p also sees, whole, the
    // document whose segment id is prefix_segment_ids[p] (its own id: none), which must come before
    // its own. Both completions of a preference pair continue one prompt packed once this way
    // (a hole of the other completion's keys between them). The document each position sees first
    // must not move back along the row; no sliding window with it (the window counts row indices).
    const std::int32_t* prefix_segment_ids = nullptr;
    // BF16 (QLoRA's compute dtype, kernels/matmul.h), where AMX-BF16 runs: the products of the
    // query-block path (attention_forward from 8 tokens on, attention_forward_saving) and of the
    // backward (q·kᵀ, P·v; dout·vᵀ, dS·k, Pᵀ·dout, dSᵀ·q) take their operands rounded to bf16 once
    // per product and sum in fp32 on AMX tiles, as torch's CPU flash attention computes them under
    // autocast (the forward rounds exp(score − max), whose largest is exactly 1, and divides the
    // product by the fp32 sum; the backward rounds P and dS); the scale, the softmax, dS and the
    // saved probabilities stay fp32. A document's results are the same bits wherever it sits in a
    // packed row. Decode's per-query path is fp32 always. F32, or BF16 without AMX: fp32 sgemm.
    Precision precision = Precision::F32;
    // The element type of attention_forward's k and v: F32, or a KV cache kept narrower
    // (model/kv_cache.h): F16 or Q8_0, laid out as a cache (kv_position_stride 0; kv_head_stride
    // and positions count elements; for Q8_0 head_dim and kv_head_stride multiples of 32). The
    // result is the bits F32 gives over the values read back (kernels/dequantize.h); the backward
    // and the saving forward take F32 only.
    DType kv_type = DType::F32;
};

// out, q: [tokens x heads x head_dim]; k, v (elements of shape.kv_type): kv head g, position p at
// g * kv_head_stride + p * kv_position_stride (positions [0, past + tokens) must be filled).
// Throws Error when heads is not a multiple of kv_heads, segment ids decrease or prefix segment ids
// break their rules, or kv_type is not F32, F16 or Q8_0 laid out as above.
void attention_forward(float* out, const float* q, const void* k, const void* v, const AttentionShape& shape);

// Backward of attention_forward (any past, window, segments, sinks and kv layout). Given dout [tokens x heads x head_dim] it ADDS dq (laid out as q) and dk, dv (laid
// out as k, v; positions [0, past + tokens) of every kv head), summing over the query heads that
// share a kv head. Sink logits are frozen (gpt-oss trains none; PEFT leaves them frozen), so they
// get no gradient; they only shrink every probability. Work items are (query head, block of queries) (in bf16 (kv head,
// block of one document's queries)): each writes its own dq rows and accumulates dk, dv into its thread's partial sums,
// which are added up at the end.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const AttentionShape& shape);

// Training may instead keep the probabilities from the forward, so that the backward skips
// recomputing them (one of its five products and the exponentials: 12% off forward + backward,
// SmolLM2's shape at 512 tokens, one thread) for
// attention_probability_floats(shape) floats: per query head, per block of up to 64 queries, a
// [queries x (past + last query + 1)] block (fewer columns with windows or segments; masked entries
// are zeros; bf16 blocks start at documents, and the size allows for any documents). The size only
// grows with tokens and past, so a buffer sized for the longest sequence serves shorter ones. attention_forward_saving always takes the sgemm path (in bf16: AMX);
// attention_backward_saved given its probabilities computes exactly what attention_backward
// computes (the saved values are bit-identical to the recomputed ones).
std::int64_t attention_probability_floats(const AttentionShape& shape);
void attention_forward_saving(float* out, float* probabilities, const float* q, const float* k, const float* v,
                              const AttentionShape& shape);
void attention_backward_saved(float* dq, float* dk, float* dv, const float* dout, const float* probabilities,
                              const float* q, const float* k, const float* v, const AttentionShape& shape);

}  // namespace kindred::kernels
