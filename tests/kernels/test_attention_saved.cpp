// Tests for attention that keeps its probabilities for the backward (kernels/attention.h): it must
// compute exactly what the recomputing path computes, bit for bit, so that the trainable
// decoder's results do not depend on which path ran.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/attention.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;

// Past, segments and a last query block shorter than the others: every offset rule is exercised.
void expect_saved_matches_recomputed(std::int64_t tokens, std::int64_t past, bool segments, bool sinks = false,
                                     Precision precision = Precision::F32) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << tokens << " past=" << past << " segments=" << segments
                                      << " sinks=" << sinks << " precision=" << precision_name(precision));
    const std::int64_t heads = 6, kv_heads = 2, head_dim = 32, positions = past + tokens;
    const auto q = random_floats(static_cast<std::size_t>(tokens * heads * head_dim), 1);
    const auto k = random_floats(static_cast<std::size_t>(positions * kv_heads * head_dim), 2);
    const auto v = random_floats(static_cast<std::size_t>(positions * kv_heads * head_dim), 3);
    const auto dout = random_floats(q.size(), 4);
    std::vector<std::int32_t> segment_ids(static_cast<std::size_t>(positions));
    for (std::int64_t p = 0; p < positions; ++p) segment_ids[static_cast<std::size_t>(p)] = static_cast<std::int32_t>(p / 37);
    AttentionShape shape;
    shape.tokens = tokens;
    shape.past = past;
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.kv_head_stride = head_dim;
    shape.kv_position_stride = kv_heads * head_dim;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    shape.segment_ids = segments ? segment_ids.data() : nullptr;
    const auto sink_logits = random_floats(static_cast<std::size_t>(heads), 5, -1.0f, 3.0f);
    shape.sinks = sinks ? sink_logits.data() : nullptr;
    shape.precision = precision;

    std::vector<float> out(q.size()), saved_out(q.size());
    attention_forward(out.data(), q.data(), k.data(), v.data(), shape);
    // Sized for a longer sequence, as the trainable decoder sizes it for max_tokens.
    AttentionShape longest = shape;
    longest.tokens = tokens + 50;
    std::vector<float> probabilities(static_cast<std::size_t>(attention_probability_floats(longest)));
    ASSERT_GE(probabilities.size(), static_cast<std::size_t>(attention_probability_floats(shape)));
    attention_forward_saving(saved_out.data(), probabilities.data(), q.data(), k.data(), v.data(), shape);
    EXPECT_EQ(saved_out, out);

    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<float> saved_dq(q.size()), saved_dk(k.size()), saved_dv(v.size());
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), shape);
    attention_backward_saved(saved_dq.data(), saved_dk.data(), saved_dv.data(), dout.data(), probabilities.data(),
                             q.data(), k.data(), v.data(), shape);
    EXPECT_EQ(saved_dq, dq);
    EXPECT_EQ(saved_dk, dk);
    EXPECT_EQ(saved_dv, dv);
}

TEST(AttentionSaved, BackwardFromSavedProbabilitiesIsBitIdentical) {
    const int original = thread_pool().size();
    for (const int threads : {1, 3}) {
        set_thread_count(threads);
        expect_saved_matches_recomputed(150, 0, false);
        expect_saved_matches_recomputed(150, 0, true);
        expect_saved_matches_recomputed(70, 20, true);
        expect_saved_matches_recomputed(64, 0, false);
        expect_saved_matches_recomputed(70, 20, true, true);
    }
    set_thread_count(original);
}

// In bf16 (AMX products) the saved probabilities are the recomputed ones too.
TEST(AttentionSaved, Bf16BackwardFromSavedProbabilitiesIsBitIdentical) {
    SKIP_WITHOUT_AMX();
    const int original = thread_pool().size();
    for (const int threads : {1, 3}) {
        set_thread_count(threads);
        expect_saved_matches_recomputed(150, 0, true, false, Precision::BF16);
        expect_saved_matches_recomputed(70, 20, true, true, Precision::BF16);
    }
    set_thread_count(original);
}

}  // namespace
}  // namespace kindred::kernels
