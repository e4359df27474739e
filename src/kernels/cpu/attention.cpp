// kernels/cpu/attention.cpp — GQA causal attention over the cache.
// Decode and short chunks take one (token, head) pair per work item: scores into per-thread
// scratch, softmax with the max subtracted, then Σ p·v. Longer chunks (prompt processing) take
// one (head, block of queries) per work item and compute scores and outputs with two sgemm calls;
// the masked part of the score block is computed and discarded, which costs less than it saves.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {
namespace {

// From this many new tokens on, the sgemm path is used.
constexpr std::int64_t blas_min_tokens = 8;
// Queries per sgemm work item: bounds the score block to query_block x positions floats.
constexpr std::int64_t query_block = 64;

float* scratch(std::int64_t n) {
    thread_local std::vector<float> buffer;
    if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
    return buffer.data();
}

// Turns scores[first..last] into probabilities in place (sinks only join the denominator);
// entries outside [first, last] are not touched.
void softmax_span(float* scores, std::int64_t first, std::int64_t last, const float* sink) {
    const float max_score = cpu::max_of(sink != nullptr ? *sink : -std::numeric_limits<float>::infinity(),
                                        scores + first, last - first + 1);
    float sum = sink != nullptr ? std::exp(*sink - max_score) : 0.0f;
    sum += cpu::exp_shifted(scores + first, scores + first, max_score, last - first + 1);
    const float inverse = 1.0f / sum;
    for (std::int64_t p = first; p <= last; ++p) scores[p] *= inverse;
}

std::int64_t first_visible(const AttentionShape& shape, std::int64_t position) {
    return shape.window > 0 ? std::max<std::int64_t>(0, position - shape.window + 1) : 0;
}

void attention_per_query(float* out, const float* q, const float* k, const float* v, const AttentionShape& shape) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, group = heads / shape.kv_heads;
    const std::int64_t positions = shape.past + shape.tokens;
    thread_pool().parallel_for(shape.tokens * heads, 1, [&](std::int64_t begin, std::int64_t end) {
        float* scores = scratch(positions);
        for (std::int64_t item = begin; item < end; ++item) {
            const std::int64_t t = item / heads, h = item % heads;
            const std::int64_t position = shape.past + t, first = first_visible(shape, position);
            const float* qv = q + item * head_dim;
            const float* kh = k + (h / group) * shape.kv_head_stride;
            const float* vh = v + (h / group) * shape.kv_head_stride;
            for (std::int64_t p = first; p <= position; ++p)
                scores[p] = cpu::dot(qv, kh + p * head_dim, head_dim) * shape.scale;
            softmax_span(scores, first, position, shape.sinks != nullptr ? shape.sinks + h : nullptr);
            float* o = out + item * head_dim;
            std::fill(o, o + head_dim, 0.0f);
            for (std::int64_t p = first; p <= position; ++p) cpu::axpy(o, scores[p], vh + p * head_dim, head_dim);
        }
    });
}

void attention_blocked(float* out, const float* q, const float* k, const float* v, const AttentionShape& shape) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, group = heads / shape.kv_heads;
    const std::int64_t row_stride = heads * head_dim;  // between tokens in q and out
    const std::int64_t blocks = (shape.tokens + query_block - 1) / query_block;
    thread_pool().parallel_for(heads * blocks, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
            const std::int64_t h = item / blocks, t0 = (item % blocks) * query_block;
            const std::int64_t rows = std::min(query_block, shape.tokens - t0);
            // Keys any query of the block can see: [lo, hi].
            const std::int64_t lo = first_visible(shape, shape.past + t0), hi = shape.past + t0 + rows - 1;
            const std::int64_t span = hi - lo + 1;
            const float* kh = k + (h / group) * shape.kv_head_stride + lo * head_dim;
            const float* vh = v + (h / group) * shape.kv_head_stride + lo * head_dim;
            const float* qh = q + t0 * row_stride + h * head_dim;
            float* scores = scratch(rows * span);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(span),
                        static_cast<blasint>(head_dim), shape.scale, qh, static_cast<blasint>(row_stride), kh,
                        static_cast<blasint>(head_dim), 0.0f, scores, static_cast<blasint>(span));
            for (std::int64_t r = 0; r < rows; ++r) {
                float* row = scores + r * span;
                const std::int64_t position = shape.past + t0 + r;
                const std::int64_t first = first_visible(shape, position) - lo, last = position - lo;
                softmax_span(row, first, last, shape.sinks != nullptr ? shape.sinks + h : nullptr);
                std::fill(row, row + first, 0.0f);
                std::fill(row + last + 1, row + span, 0.0f);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows), static_cast<blasint>(head_dim),
                        static_cast<blasint>(span), 1.0f, scores, static_cast<blasint>(span), vh,
                        static_cast<blasint>(head_dim), 0.0f, out + t0 * row_stride + h * head_dim,
                        static_cast<blasint>(row_stride));
        }
    });
}

}  // namespace

void attention_forward(float* out, const float* q, const float* k, const float* v, const AttentionShape& shape) {
    if (shape.kv_heads <= 0 || shape.heads % shape.kv_heads != 0)
        fail("attention: {} heads cannot share {} kv heads", shape.heads, shape.kv_heads);
    if (shape.tokens >= blas_min_tokens) {
        cpu::pin_openblas_to_one_thread();
        attention_blocked(out, q, k, v, shape);
    } else {
        attention_per_query(out, q, k, v, shape);
    }
}

}  // namespace kindred::kernels
