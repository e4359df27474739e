// Tests for kernels/attention.h against a double-precision reference: GQA head sharing, a cache
// with earlier positions, sliding windows and sink logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/attention.h"

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

}  // namespace
}  // namespace kindred::kernels
