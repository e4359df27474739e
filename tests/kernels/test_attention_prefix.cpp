// Tests for kernels/attention.h's prefix segments: documents that continue one shared prefix packed
// once compute what the packed row with the prefix repeated before each of them computes (forward
// outputs; backward gradients summed over the prefix's copies), on the per-query and blocked paths,
// recomputing or keeping the probabilities; and the rules are enforced.
#include <gtest/gtest.h>

#include <array>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/attention.h"

namespace kindred::kernels {
namespace {

using kindred::testing::random_floats;

constexpr std::int64_t heads = 4, kv_heads = 2, head_dim = 16;

// Rows [positions x width] of a [positions x width]-per-row array, gathered at `from` (query-major
// q/out) — or, for keys and values, per kv head ([kv_heads x positions x head_dim]).
std::vector<float> gather_rows(const std::vector<float>& x, const std::vector<std::int64_t>& from, std::int64_t width) {
    std::vector<float> out;
    for (std::int64_t p : from) out.insert(out.end(), x.begin() + p * width, x.begin() + (p + 1) * width);
    return out;
}
std::vector<float> gather_kv(const std::vector<float>& x, const std::vector<std::int64_t>& from, std::int64_t positions) {
    std::vector<float> out;
    for (std::int64_t g = 0; g < kv_heads; ++g)
        for (std::int64_t p : from)
            out.insert(out.end(), x.begin() + (g * positions + p) * head_dim, x.begin() + (g * positions + p + 1) * head_dim);
    return out;
}
// The sums of the repeated layout's rows onto the compact rows they came from.
std::vector<float> fold_rows(const std::vector<float>& x, const std::vector<std::int64_t>& from, std::int64_t compact,
                             std::int64_t width) {
    std::vector<float> out(static_cast<std::size_t>(compact * width), 0.0f);
    for (std::size_t i = 0; i < from.size(); ++i)
        for (std::int64_t c = 0; c < width; ++c) out[from[i] * width + c] += x[static_cast<std::int64_t>(i) * width + c];
    return out;
}
std::vector<float> fold_kv(const std::vector<float>& x, const std::vector<std::int64_t>& from, std::int64_t compact) {
    std::vector<float> out(static_cast<std::size_t>(kv_heads * compact * head_dim), 0.0f);
    const auto n = static_cast<std::int64_t>(from.size());
    for (std::int64_t g = 0; g < kv_heads; ++g)
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t c = 0; c < head_dim; ++c)
                out[(g * compact + from[i]) * head_dim + c] += x[(g * n + i) * head_dim + c];
    return out;
}

AttentionShape shape_of(std::int64_t tokens, const std::vector<std::int32_t>& segments) {
    AttentionShape shape = kindred::testing::row_attention_shape(tokens, heads, kv_heads, head_dim, 0.3f);
    shape.segment_ids = segments.data();
    return shape;
}

// Groups of (prefix, first tail, second tail) lengths, then one plain document of `plain` tokens.
void expect_prefix_equals_repeated(const std::vector<std::array<std::int64_t, 3>>& groups, std::int64_t plain) {
    SCOPED_TRACE(::testing::Message() << "groups=" << groups.size() << " first prefix=" << groups[0][0]);
    // Compact layout: [prefix][tail 1][tail 2] per group; repeated: [prefix tail 1][prefix tail 2].
    std::vector<std::int32_t> segments, prefixes, repeated_segments;
    std::vector<std::int64_t> from;  // per repeated position: its compact position
    std::int64_t compact = 0;
    std::int32_t segment = 0, repeated_segment = 0;
    const auto append = [&](std::int64_t n, std::int32_t prefix) {
        for (std::int64_t i = 0; i < n; ++i) {
            segments.push_back(segment);
            prefixes.push_back(prefix);
        }
        compact += n;
        ++segment;
    };
    for (const auto& [prefix, first, second] : groups) {
        const std::int64_t start = compact;
        append(prefix, segment);
        const std::int32_t shared = segment - 1;
        append(first, shared);
        append(second, shared);
        for (const auto& [tail, offset] : {std::pair{first, prefix}, std::pair{second, prefix + first}}) {
            for (std::int64_t i = 0; i < prefix; ++i) from.push_back(start + i);
            for (std::int64_t i = 0; i < tail; ++i) from.push_back(start + offset + i);
            repeated_segments.insert(repeated_segments.end(), static_cast<std::size_t>(prefix + tail), repeated_segment++);
        }
    }
    for (std::int64_t i = 0; i < plain; ++i) from.push_back(compact + i);
    repeated_segments.insert(repeated_segments.end(), static_cast<std::size_t>(plain), repeated_segment);
    append(plain, segment);
    const auto repeated = static_cast<std::int64_t>(from.size());

    const auto q = random_floats(compact * heads * head_dim, 21, -2.0f, 2.0f);
    const auto k = random_floats(kv_heads * compact * head_dim, 22, -2.0f, 2.0f);
    const auto v = random_floats(k.size(), 23);
    const auto dout_repeated = random_floats(repeated * heads * head_dim, 24);
    AttentionShape shared = shape_of(compact, segments);
    shared.prefix_segment_ids = prefixes.data();
    const AttentionShape plain_shape = shape_of(repeated, repeated_segments);
    const auto rq = gather_rows(q, from, heads * head_dim);
    const auto rk = gather_kv(k, from, compact), rv = gather_kv(v, from, compact);

    std::vector<float> out(q.size()), expected(rq.size());
    attention_forward(out.data(), q.data(), k.data(), v.data(), shared);
    attention_forward(expected.data(), rq.data(), rk.data(), rv.data(), plain_shape);
    const auto out_repeated = gather_rows(out, from, heads * head_dim);
    // The same products over the same keys (plus zeros for the hole); only sgemm blocking and the
    // split of the exponential sums reorder fp32 sums (~1e-7 on outputs of magnitude ~1).
    for (std::size_t i = 0; i < expected.size(); ++i) ASSERT_NEAR(out_repeated[i], expected[i], 2e-6) << i;

    std::vector<float> probabilities(static_cast<std::size_t>(attention_probability_floats(shared)));
    std::vector<float> saved_out(q.size());
    attention_forward_saving(saved_out.data(), probabilities.data(), q.data(), k.data(), v.data(), shared);
    if (compact >= 8) {
        EXPECT_EQ(saved_out, out);  // the same blocked path
    }

    std::vector<float> rdq(rq.size(), 0.0f), rdk(rk.size(), 0.0f), rdv(rv.size(), 0.0f);
    attention_backward(rdq.data(), rdk.data(), rdv.data(), dout_repeated.data(), rq.data(), rk.data(), rv.data(),
                       plain_shape);
    const auto dout = fold_rows(dout_repeated, from, compact, heads * head_dim);
    const auto want_dq = fold_rows(rdq, from, compact, heads * head_dim);
    const auto want_dk = fold_kv(rdk, from, compact), want_dv = fold_kv(rdv, from, compact);
    for (const bool keep : {false, true}) {
        SCOPED_TRACE(keep ? "saved probabilities" : "recomputed probabilities");
        std::vector<float> dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
        if (keep)
            attention_backward_saved(dq.data(), dk.data(), dv.data(), dout.data(), probabilities.data(), q.data(),
                                     k.data(), v.data(), shared);
        else
            attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), shared);
        // Gradients are sums of up to ~100 terms of magnitude ≤ ~2 taken in other orders: 2e-5.
        for (std::size_t i = 0; i < dq.size(); ++i) ASSERT_NEAR(dq[i], want_dq[i], 2e-5) << "dq " << i;
        for (std::size_t i = 0; i < dk.size(); ++i) ASSERT_NEAR(dk[i], want_dk[i], 2e-5) << "dk " << i;
        for (std::size_t i = 0; i < dv.size(); ++i) ASSERT_NEAR(dv[i], want_dv[i], 2e-5) << "dv " << i;
    }
}

TEST(AttentionPrefix, FewTokensOnThePerQueryPath) { expect_prefix_equals_repeated({{3, 2, 2}}, 0); }

TEST(AttentionPrefix, GroupsAcrossQueryBlocksEqualTheRepeatedPrefix) {
    // 50 + 30 + 40 and 20 + 9 + 1 then 13 plain: 163 positions, three query blocks, holes that
    // start and end inside blocks.
    expect_prefix_equals_repeated({{50, 30, 40}, {20, 9, 1}}, 13);
}

TEST(AttentionPrefix, RulesAreEnforced) {
    const std::int64_t tokens = 12;
    const auto q = random_floats(tokens * heads * head_dim, 31);
    const auto k = random_floats(kv_heads * tokens * head_dim, 32);
    std::vector<float> out(q.size());
    const std::vector<std::int32_t> segments = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3};
    const auto run = [&](std::vector<std::int32_t> prefixes, std::int64_t window, bool with_segments) {
        AttentionShape shape = shape_of(tokens, segments);
        if (!with_segments) shape.segment_ids = nullptr;
        shape.window = window;
        shape.prefix_segment_ids = prefixes.data();
        attention_forward(out.data(), q.data(), k.data(), k.data(), shape);
    };
    EXPECT_NO_THROW(run({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3}, 0, true));
    EXPECT_THROW(run({0, 0, 0, 0, 1, 1, 1, 3, 3, 3, 3, 3}, 0, true), Error);  // a later document
    EXPECT_THROW(run({0, 0, 0, 0, 1, 1, 1, 5, 5, 5, 3, 3}, 0, true), Error);  // no such document
    EXPECT_THROW(run({0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0}, 0, true), Error);  // moves back along the row
    EXPECT_THROW(run({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3}, 4, true), Error);  // with a window
    EXPECT_THROW(run({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3}, 0, false), Error); // without segments
}

}  // namespace
}  // namespace kindred::kernels
