// Tests for kernels/attention.h against a double-precision reference: GQA head sharing, a cache
// with earlier positions, sliding windows, sink logits and packed documents (segment ids). The
// backward pass is tested in test_ops_backward.cpp and test_block_backward.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernel_test_util.h"
#include "kernels/attention.h"
#include "kernels/dequantize.h"
#include "kernels/quantize.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;

void expect_attention_matches(std::int64_t tokens, std::int64_t past, std::int64_t window, bool sinks) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << tokens << " past=" << past << " window=" << window);
    const std::int64_t heads = 6, kv_heads = 2, head_dim = 40, capacity = 80;
    const auto q = random_floats(tokens * heads * head_dim, 1, -2.0f, 2.0f);
    const auto k = random_floats(kv_heads * capacity * head_dim, 2, -2.0f, 2.0f);
    const auto v = random_floats(kv_heads * capacity * head_dim, 3);
    const auto sink_logits = random_floats(heads, 4);
    AttentionShape shape;
    shape.tokens = tokens;
    shape.past = past;
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.kv_head_stride = capacity * head_dim;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    shape.window = window;
    shape.sinks = sinks ? sink_logits.data() : nullptr;
    std::vector<float> out(q.size());
    attention_forward(out.data(), q.data(), k.data(), v.data(), shape);

    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t h = 0; h < heads; ++h) {
            const std::int64_t g = h / (heads / kv_heads), position = past + t;
            const std::int64_t first = window > 0 ? std::max<std::int64_t>(0, position - window + 1) : 0;
            std::vector<double> scores;
            for (std::int64_t p = first; p <= position; ++p) {
                double s = 0.0;
                for (std::int64_t i = 0; i < head_dim; ++i)
                    s += static_cast<double>(q[(t * heads + h) * head_dim + i]) * k[(g * capacity + p) * head_dim + i];
                scores.push_back(s * shape.scale);
            }
            double max_score = *std::max_element(scores.begin(), scores.end());
            if (sinks) max_score = std::max(max_score, static_cast<double>(sink_logits[h]));
            double sum = sinks ? std::exp(sink_logits[h] - max_score) : 0.0;
            for (auto& s : scores) sum += (s = std::exp(s - max_score));
            for (std::int64_t i = 0; i < head_dim; ++i) {
                double expected = 0.0;
                for (std::int64_t p = first; p <= position; ++p)
                    expected += scores[p - first] / sum * v[(g * capacity + p) * head_dim + i];
                // Scores of magnitude ≤ ~8 carry fp32 rounding ~1e-6 into exp; outputs are convex
                // combinations of values in [-1, 1], so 1e-5 absolute leaves a wide margin.
                ASSERT_NEAR(out[(t * heads + h) * head_dim + i], expected, 1e-5) << "t=" << t << " h=" << h;
            }
        }
}

TEST(Attention, CausalPrefillFromEmptyCache) { expect_attention_matches(9, 0, 0, false); }
TEST(Attention, DecodeAfterPastPositions) { expect_attention_matches(1, 40, 0, false); }
TEST(Attention, ChunkAfterPastPositions) { expect_attention_matches(7, 20, 0, false); }
TEST(Attention, SlidingWindow) {
    expect_attention_matches(3, 30, 5, false);
    expect_attention_matches(12, 30, 5, false);
}
TEST(Attention, SinkLogitsJoinTheDenominator) { expect_attention_matches(5, 10, 0, true); }
// From 8 tokens on the sgemm path runs; 70 tokens span two query blocks of 64.
TEST(Attention, BlockedPathWithSinksAndWindow) { expect_attention_matches(16, 3, 6, true); }
TEST(Attention, BlockedPathAcrossQueryBlocks) {
    expect_attention_matches(70, 0, 0, false);
    expect_attention_matches(70, 5, 20, false);
}

// Packed documents: the packed row's outputs equal those of each document run on its own, on both
// forward paths (7 tokens per-query, 40 tokens blocked), with and without a window.
TEST(Attention, PackedSegmentsEqualSeparateDocuments) {
    const std::int64_t heads = 4, kv_heads = 2, head_dim = 16;
    for (std::int64_t tokens : {7, 40})
        for (std::int64_t window : {0, 5}) {
            SCOPED_TRACE(::testing::Message() << "tokens=" << tokens << " window=" << window);
            const std::int64_t split = tokens / 3;  // documents [0, split) and [split, tokens)
            std::vector<std::int32_t> segments(static_cast<std::size_t>(tokens), 3);
            std::fill(segments.begin(), segments.begin() + split, 2);
            const auto q = random_floats(tokens * heads * head_dim, 11, -2.0f, 2.0f);
            const auto k = random_floats(kv_heads * tokens * head_dim, 12, -2.0f, 2.0f);
            const auto v = random_floats(k.size(), 13);
            AttentionShape shape;
            shape.heads = heads;
            shape.kv_heads = kv_heads;
            shape.head_dim = head_dim;
            shape.kv_head_stride = tokens * head_dim;
            shape.scale = 0.25f;
            shape.window = window;
            shape.tokens = tokens;
            shape.segment_ids = segments.data();
            std::vector<float> packed(q.size());
            attention_forward(packed.data(), q.data(), k.data(), v.data(), shape);
            for (auto [begin, end] : {std::pair<std::int64_t, std::int64_t>{0, split}, {split, tokens}}) {
                const std::int64_t n = end - begin;
                std::vector<float> doc_q(q.begin() + begin * heads * head_dim, q.begin() + end * heads * head_dim);
                std::vector<float> doc_k, doc_v;
                for (std::int64_t g = 0; g < kv_heads; ++g) {
                    const auto from = (g * tokens + begin) * head_dim, to = (g * tokens + end) * head_dim;
                    doc_k.insert(doc_k.end(), k.begin() + from, k.begin() + to);
                    doc_v.insert(doc_v.end(), v.begin() + from, v.begin() + to);
                }
                AttentionShape alone = shape;
                alone.tokens = n;
                alone.kv_head_stride = n * head_dim;
                alone.segment_ids = nullptr;
                std::vector<float> out(doc_q.size());
                attention_forward(out.data(), doc_q.data(), doc_k.data(), doc_v.data(), alone);
                // Same products over the same keys; only sgemm blocking may reorder sums (~1e-7).
                for (std::size_t i = 0; i < out.size(); ++i)
                    ASSERT_NEAR(packed[static_cast<std::size_t>(begin * heads * head_dim) + i], out[i], 1e-5) << i;
            }
        }
}

// k and v as projections write them ([tokens x kv_heads x head_dim], kv_position_stride) give the
// same outputs as the cache layout, on both paths (5 tokens per-query, 20 blocked); the layouts
// only change addresses, so the results are identical.
TEST(Attention, TokenMajorKeysAndValuesEqualCacheLayout) {
    const std::int64_t heads = 6, kv_heads = 2, head_dim = 16;
    for (std::int64_t tokens : {5, 20}) {
        const auto q = random_floats(tokens * heads * head_dim, 21, -2.0f, 2.0f);
        const auto k = random_floats(tokens * kv_heads * head_dim, 22, -2.0f, 2.0f);  // token-major
        const auto v = random_floats(k.size(), 23);
        std::vector<float> k_cache(k.size()), v_cache(v.size());
        for (std::int64_t t = 0; t < tokens; ++t)
            for (std::int64_t g = 0; g < kv_heads; ++g)
                for (std::int64_t i = 0; i < head_dim; ++i) {
                    k_cache[(g * tokens + t) * head_dim + i] = k[(t * kv_heads + g) * head_dim + i];
                    v_cache[(g * tokens + t) * head_dim + i] = v[(t * kv_heads + g) * head_dim + i];
                }
        AttentionShape shape;
        shape.tokens = tokens;
        shape.heads = heads;
        shape.kv_heads = kv_heads;
        shape.head_dim = head_dim;
        shape.scale = 0.25f;
        shape.window = 7;
        shape.kv_head_stride = tokens * head_dim;
        std::vector<float> expected(q.size()), out(q.size());
        attention_forward(expected.data(), q.data(), k_cache.data(), v_cache.data(), shape);
        shape.kv_head_stride = head_dim;
        shape.kv_position_stride = kv_heads * head_dim;
        attention_forward(out.data(), q.data(), k.data(), v.data(), shape);
        EXPECT_EQ(out, expected) << "tokens=" << tokens;
    }
}

// A KV cache kept in F16 or Q8_0 (AttentionShape::kv_type) is read back to fp32 and then attended
// as fp32 is: bit for bit what fp32 attention over the read-back keys and values gives, on the
// per-query path (decode, tokens < 8) and the sgemm path (prefill), with earlier cached positions,
// a sliding window and sinks, and for a cache longer than one read-back work item (256 positions).
TEST(Attention, NarrowCacheIsAttendedAsItsFp32ReadBack) {
    const std::int64_t heads = 6, kv_heads = 2, head_dim = 64, capacity = 300;
    const auto k = random_floats(kv_heads * capacity * head_dim, 5, -3.0f, 3.0f);
    const auto v = random_floats(kv_heads * capacity * head_dim, 6);
    const auto sink_logits = random_floats(heads, 7);
    for (const DType type : {DType::F16, DType::Q8_0}) {
        const auto bytes = static_cast<std::size_t>(row_bytes(type, k.size()));
        std::vector<std::uint8_t> k_stored(bytes), v_stored(bytes);
        for (auto [from, to] : {std::pair{&k, &k_stored}, std::pair{&v, &v_stored}}) {
            if (type == DType::F16) {
                for (std::size_t i = 0; i < from->size(); ++i) {
                    const std::uint16_t half = fp32_to_fp16((*from)[i]);
                    std::memcpy(to->data() + 2 * i, &half, 2);
                }
            } else {
                quantize_row_q8_0(from->data(), to->data(), static_cast<std::int64_t>(from->size()));
            }
        }
        std::vector<float> k_read(k.size()), v_read(v.size());
        dequantize_row(type, k_stored.data(), k_read.data(), static_cast<std::int64_t>(k.size()));
        dequantize_row(type, v_stored.data(), v_read.data(), static_cast<std::int64_t>(v.size()));
        for (const auto& [tokens, past, window] : {std::tuple{1, 0, 0}, std::tuple{1, 299, 0}, std::tuple{3, 40, 16},
                                                   std::tuple{12, 0, 0}, std::tuple{40, 260, 0}, std::tuple{9, 100, 32}}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(type) << " tokens=" << tokens << " past=" << past
                                              << " window=" << window);
            const auto q = random_floats(tokens * heads * head_dim, 8, -2.0f, 2.0f);
            AttentionShape shape = kindred::testing::row_attention_shape(tokens, heads, kv_heads, head_dim, 0.125f);
            shape.past = past;
            shape.kv_head_stride = capacity * head_dim;
            shape.window = window;
            shape.sinks = sink_logits.data();
            std::vector<float> want(q.size()), got(q.size());
            attention_forward(want.data(), q.data(), k_read.data(), v_read.data(), shape);
            shape.kv_type = type;
            attention_forward(got.data(), q.data(), k_stored.data(), v_stored.data(), shape);
            EXPECT_EQ(got, want);
        }
    }
}

TEST(Attention, NarrowCacheTypesAreRefusedWhereTheyCannotBeRead) {
    const std::vector<float> q(64), k(2 * 64), v(2 * 64);
    AttentionShape shape = kindred::testing::row_attention_shape(2, 1, 1, 48, 1.0f);  // 48: not whole Q8_0 blocks
    shape.tokens = 1;
    shape.past = 1;
    shape.kv_type = DType::Q8_0;
    std::vector<float> out(64);
    EXPECT_THROW(attention_forward(out.data(), q.data(), k.data(), v.data(), shape), Error);
    shape.kv_type = DType::Q4_0;
    shape.head_dim = 64;
    shape.kv_head_stride = 128;
    EXPECT_THROW(attention_forward(out.data(), q.data(), k.data(), v.data(), shape), Error);
    shape.kv_type = DType::F16;
    std::vector<float> dq(64), dk(128), dv(128);
    EXPECT_THROW(attention_backward(dq.data(), dk.data(), dv.data(), out.data(), q.data(), k.data(), v.data(), shape),
                 Error);
}

}  // namespace
}  // namespace kindred::kernels
