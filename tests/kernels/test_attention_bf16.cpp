// Tests for attention in bf16 (AttentionShape::precision, kernels/attention.h): the query-block
// forward and the backward multiply bf16-rounded operands on AMX tiles with fp32 sums, the way
// torch's autocast computes them. Checked against a double-precision reference computed from the
// bf16-rounded q, k, v and dout, on ragged shapes (head_dim 64 and not a multiple of 32; documents,
// windows and query blocks whose key ranges do not start or end on 16 or 32; GQA; cached positions;
// sinks; a prefix document shared by two). Skipped without AMX-BF16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "kernels/attention.h"

namespace kindred::kernels {
namespace {

using kindred::testing::fp32_sum_bound;
using kindred::testing::random_floats;

double rounded(float x) { return bf16_to_fp32(fp32_to_bf16(x)); }

const double u16 = std::ldexp(1.0, -8);   // bf16's unit roundoff: |bf16(x) - x| <= 2^-8 |x|
const double u32 = std::ldexp(1.0, -24);  // fp32's

struct Bf16Case {
    std::int64_t tokens, past, heads, kv_heads, head_dim, window;
    std::int64_t document;  // positions per packed document (0: one document)
    bool sinks = false;
    bool shared_prefix = false;  // documents 1 and 2 both continue document 0 (a preference pair)
};

// A reference value with the bound on its distance from the kernel's: `budget` collects the
// rounding of intermediate values (P and dS to bf16, and the fp32 errors they carry in), and
// fp32_sum_bound(terms, magnitude) the fp32 summation of the exact bf16 x bf16 products.
struct Expected {
    double value = 0.0, budget = 0.0, magnitude = 0.0;
    std::int64_t terms = 0;
    // Adds a · b where a carries an absolute error of at most a_error before it is rounded to bf16.
    void add(double a, double a_error, double b) {
        value += a * b;
        budget += (u16 * std::abs(a) + (1.0 + u16) * a_error) * std::abs(b);
        magnitude += std::abs(a * b);
        ++terms;
    }
    double tolerance() const { return budget + fp32_sum_bound(terms, magnitude); }
};

void check_bf16_attention(const Bf16Case& c) {
    SCOPED_TRACE(::testing::Message() << "tokens=" << c.tokens << " past=" << c.past << " heads=" << c.heads << "/"
                                      << c.kv_heads << " head_dim=" << c.head_dim << " window=" << c.window
                                      << " document=" << c.document << " sinks=" << c.sinks
                                      << " shared_prefix=" << c.shared_prefix);
    const std::int64_t positions = c.past + c.tokens, hd = c.head_dim, group = c.heads / c.kv_heads;
    const std::int64_t row = c.heads * hd, kv_row = c.kv_heads * hd;
    // Training's layout: keys and values as the projections' rows.
    const auto q = random_floats(static_cast<std::size_t>(c.tokens * row), 61, -2.0f, 2.0f);
    const auto k = random_floats(static_cast<std::size_t>(positions * kv_row), 62, -2.0f, 2.0f);
    const auto v = random_floats(k.size(), 63);
    const auto dout = random_floats(q.size(), 64);
    const auto sink_logits = random_floats(static_cast<std::size_t>(c.heads), 65, -1.0f, 2.0f);
    std::vector<std::int32_t> segments(static_cast<std::size_t>(positions)), prefixes(segments.size());
    for (std::int64_t p = 0; p < positions; ++p) {
        segments[p] = c.document > 0 ? static_cast<std::int32_t>(p / c.document) : 0;
        prefixes[p] = c.shared_prefix && (segments[p] == 1 || segments[p] == 2) ? 0 : segments[p];
    }
    AttentionShape shape;
    shape.tokens = c.tokens;
    shape.past = c.past;
    shape.heads = c.heads;
    shape.kv_heads = c.kv_heads;
    shape.head_dim = hd;
    shape.kv_head_stride = hd;
    shape.kv_position_stride = kv_row;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    shape.window = c.window;
    shape.sinks = c.sinks ? sink_logits.data() : nullptr;
    shape.segment_ids = c.document > 0 ? segments.data() : nullptr;
    shape.prefix_segment_ids = c.shared_prefix ? prefixes.data() : nullptr;
    shape.precision = Precision::BF16;

    std::vector<float> out(q.size()), probabilities(static_cast<std::size_t>(attention_probability_floats(shape)));
    attention_forward_saving(out.data(), probabilities.data(), q.data(), k.data(), v.data(), shape);
    std::vector<float> dq(q.size(), 0.25f), dk(k.size(), -0.5f), dv(v.size(), 0.75f);  // the backward adds
    attention_backward_saved(dq.data(), dk.data(), dv.data(), dout.data(), probabilities.data(), q.data(), k.data(),
                             v.data(), shape);

    std::vector<Expected> want_out(q.size()), want_dq(q.size()), want_dk(k.size()), want_dv(v.size());
    for (std::size_t i = 0; i < q.size(); ++i) want_dq[i].value = want_dq[i].magnitude = 0.25;
    for (std::size_t i = 0; i < k.size(); ++i) want_dk[i].value = -0.5, want_dk[i].magnitude = 0.5;
    for (std::size_t i = 0; i < v.size(); ++i) want_dv[i].value = want_dv[i].magnitude = 0.75;
    const auto sees = [&](std::int64_t p, std::int64_t j) {
        if (j > p || (c.window > 0 && j <= p - c.window)) return false;
        return c.document == 0 || segments[j] == segments[p] || segments[j] == prefixes[p];
    };
    for (std::int64_t t = 0; t < c.tokens; ++t)
        for (std::int64_t h = 0; h < c.heads; ++h) {
            const std::int64_t position = c.past + t, g = h / group;
            const auto qi = [&](std::int64_t i) { return rounded(q[t * row + h * hd + i]); };
            const auto ki = [&](std::int64_t j, std::int64_t i) { return rounded(k[j * kv_row + g * hd + i]); };
            const auto vi = [&](std::int64_t j, std::int64_t i) { return rounded(v[j * kv_row + g * hd + i]); };
            const auto di = [&](std::int64_t i) { return rounded(dout[t * row + h * hd + i]); };
            std::vector<std::int64_t> keys;
            for (std::int64_t j = 0; j <= position; ++j)
                if (sees(position, j)) keys.push_back(j);
            const auto n = keys.size();
            // Scores from the rounded operands; the kernel's differ by its fp32 sum and the fp32
            // scaling: at most score_error.
            std::vector<double> p(n), dp(n), dp_error(n);
            double top = c.sinks ? sink_logits[h] : -1e300, score_error = 0.0;
            for (std::size_t a = 0; a < n; ++a) {
                double s = 0.0, magnitude = 0.0, d = 0.0, d_magnitude = 0.0;
                for (std::int64_t i = 0; i < hd; ++i) {
                    s += qi(i) * ki(keys[a], i);
                    magnitude += std::abs(qi(i) * ki(keys[a], i));
                    d += di(i) * vi(keys[a], i);
                    d_magnitude += std::abs(di(i) * vi(keys[a], i));
                }
                p[a] = s * shape.scale;
                score_error = std::max(score_error, shape.scale * fp32_sum_bound(hd, magnitude) + u32 * std::abs(p[a]));
                dp[a] = d;
                dp_error[a] = fp32_sum_bound(hd, d_magnitude);
                top = std::max(top, p[a]);
            }
            double sum = c.sinks ? std::exp(sink_logits[h] - top) : 0.0, spread = 0.0;
            for (double& s : p) {
                spread = std::max(spread, top - s);
                sum += s = std::exp(s - top);
            }
            for (double& s : p) s /= sum;
            // The kernel's fp32 probabilities are within rho · P of these: the exponentials move by
            // the score error (twice, through the denominator), fp32's rounding of the shifted
            // scores (u32 · spread), the ~2 ulp exponential and the fp32 sum of the denominator.
            const double rho = 2.0 * (score_error + u32 * spread) + u32 * static_cast<double>(n + 16);
            double dot = 0.0, dot_error = 0.0, dot_magnitude = 0.0;
            for (std::size_t a = 0; a < n; ++a) {
                dot += p[a] * dp[a];
                dot_error += rho * p[a] * std::abs(dp[a]) + p[a] * dp_error[a];
                dot_magnitude += std::abs(p[a] * dp[a]);
            }
            dot_error += fp32_sum_bound(static_cast<std::int64_t>(n), dot_magnitude);
            for (std::size_t a = 0; a < n; ++a) {
                const std::int64_t j = keys[a];
                // dS = scale · P (dP − D) in fp32 from its inputs' errors, plus three roundings.
                const double ds = shape.scale * p[a] * (dp[a] - dot);
                const double ds_error = shape.scale * (rho * p[a] * std::abs(dp[a] - dot) +
                                                       p[a] * (dp_error[a] + dot_error)) + 4.0 * u32 * std::abs(ds);
                for (std::int64_t i = 0; i < hd; ++i) {
                    // The kernel rounds exp(s - max) and divides the sum by the row's fp32 total
                    // afterwards: relative to P the same bf16 rounding, and one more fp32 rounding
                    // (counted below).
                    want_out[t * row + h * hd + i].add(p[a], rho * p[a], vi(j, i));
                    want_dq[t * row + h * hd + i].add(ds, ds_error, ki(j, i));
                    want_dk[j * kv_row + g * hd + i].add(ds, ds_error, qi(i));
                    want_dv[j * kv_row + g * hd + i].add(p[a], rho * p[a], di(i));
                }
            }
        }
    for (std::int64_t t = 0; t < c.tokens; ++t)
        for (std::int64_t i = 0; i < row; ++i) ++want_out[t * row + i].terms;
    const auto expect_near = [](const std::vector<float>& got, const std::vector<Expected>& want, const char* what) {
        for (std::size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], want[i].value, want[i].tolerance()) << what << " " << i;
    };
    ASSERT_NO_FATAL_FAILURE(expect_near(out, want_out, "out"));
    ASSERT_NO_FATAL_FAILURE(expect_near(dq, want_dq, "dq"));
    ASSERT_NO_FATAL_FAILURE(expect_near(dk, want_dk, "dk"));
    ASSERT_NO_FATAL_FAILURE(expect_near(dv, want_dv, "dv"));

    // The forward that does not keep its probabilities runs the same products, and a work item's
    // results do not depend on the thread that computes it.
    std::vector<float> plain_out(q.size());
    attention_forward(plain_out.data(), q.data(), k.data(), v.data(), shape);
    EXPECT_EQ(plain_out, out);
    const int threads = thread_pool().size();
    set_thread_count(1);
    attention_forward(plain_out.data(), q.data(), k.data(), v.data(), shape);
    set_thread_count(threads);
    EXPECT_EQ(plain_out, out);
    // And the precision reaches the products: fp32 computes other bits.
    shape.precision = Precision::F32;
    attention_forward(plain_out.data(), q.data(), k.data(), v.data(), shape);
    EXPECT_NE(plain_out, out);
}

// The tolerance of every value is its reference's own bound (Expected): bf16's rounding of the
// intermediate P and dS (2^-8 of each term, the bound the fused cross-entropy's bf16 test uses
// for its rounded coefficients), the fp32 error those carry in from the scores' and dP's fp32
// sums and the softmax, and fp32_sum_bound for the sums of exact bf16 products (Bf16Gemm's).
TEST(AttentionBf16, MatchesTheRoundedOperandsOnRaggedShapes) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(3);  // items and partial dk/dv sums spread unevenly
    // SmolLM2's head_dim and GQA; documents of 37 positions: key ranges start off every tile, and
    // 150 tokens end in a short query block.
    check_bf16_attention({150, 0, 6, 2, 64, 0, 37});
    // head_dim not a multiple of 32 (nor 16), after cached positions, a window and sinks.
    check_bf16_attention({70, 5, 3, 1, 40, 21, 0, true});
    // head_dim below one tile, one kv head per head, a shared prefix (a hole in the key range).
    check_bf16_attention({100, 0, 2, 2, 24, 0, 29, false, true});
    set_thread_count(previous);
}

// A document's bf16 results are the same bits wherever it sits in a packed row and whatever
// precedes it (its blocks and its keys' tile slots count from its own start): here document B
// after a 37-token document and after a 13-token one. dk and dv are compared on one thread, where
// the partial sums of blocks add up in one order.
TEST(AttentionBf16, ADocumentsBitsDoNotDependOnItsPlaceInTheRow) {
    SKIP_WITHOUT_AMX();
    const int previous = thread_pool().size();
    set_thread_count(1);
    const std::int64_t heads = 6, kv_heads = 2, hd = 64, row = heads * hd, kv_row = kv_heads * hd, length = 150;
    const auto doc_q = random_floats(static_cast<std::size_t>(length * row), 91, -2.0f, 2.0f);
    const auto doc_k = random_floats(static_cast<std::size_t>(length * kv_row), 92, -2.0f, 2.0f);
    const auto doc_v = random_floats(doc_k.size(), 93);
    const auto doc_dout = random_floats(doc_q.size(), 94);
    struct Result {
        std::vector<float> out, dq, dk, dv;
    };
    const auto run_after = [&](std::int64_t before) {
        const std::int64_t tokens = before + length;
        auto q = random_floats(static_cast<std::size_t>(tokens * row), 95, -2.0f, 2.0f);
        auto k = random_floats(static_cast<std::size_t>(tokens * kv_row), 96, -2.0f, 2.0f);
        auto v = random_floats(k.size(), 97);
        auto dout = random_floats(q.size(), 98);
        std::copy(doc_q.begin(), doc_q.end(), q.begin() + before * row);
        std::copy(doc_dout.begin(), doc_dout.end(), dout.begin() + before * row);
        std::copy(doc_k.begin(), doc_k.end(), k.begin() + before * kv_row);
        std::copy(doc_v.begin(), doc_v.end(), v.begin() + before * kv_row);
        std::vector<std::int32_t> segments(static_cast<std::size_t>(tokens), 0);
        std::fill(segments.begin() + before, segments.end(), 1);
        AttentionShape shape;
        shape.tokens = tokens;
        shape.heads = heads;
        shape.kv_heads = kv_heads;
        shape.head_dim = hd;
        shape.kv_head_stride = hd;
        shape.kv_position_stride = kv_row;
        shape.scale = 0.125f;
        shape.segment_ids = segments.data();
        shape.precision = Precision::BF16;
        std::vector<float> out(q.size()), probabilities(static_cast<std::size_t>(attention_probability_floats(shape)));
        std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
        attention_forward_saving(out.data(), probabilities.data(), q.data(), k.data(), v.data(), shape);
        attention_backward_saved(dq.data(), dk.data(), dv.data(), dout.data(), probabilities.data(), q.data(),
                                 k.data(), v.data(), shape);
        const auto tail = [&](const std::vector<float>& x, std::int64_t width) {
            return std::vector<float>(x.begin() + before * width, x.end());
        };
        return Result{tail(out, row), tail(dq, row), tail(dk, kv_row), tail(dv, kv_row)};
    };
    const Result a = run_after(37), b = run_after(13);
    EXPECT_EQ(a.out, b.out);
    EXPECT_EQ(a.dq, b.dq);
    EXPECT_EQ(a.dk, b.dk);
    EXPECT_EQ(a.dv, b.dv);
    set_thread_count(previous);
}

// Per-query decode (fewer than 8 tokens) stays fp32 whatever the precision.
TEST(AttentionBf16, DecodeStaysFp32) {
    const std::int64_t tokens = 3, past = 20, positions = past + tokens;
    auto shape = kindred::testing::row_attention_shape(positions, 4, 2, 32, 0.2f);
    shape.tokens = tokens;
    shape.past = past;
    const auto q = random_floats(static_cast<std::size_t>(tokens * 4 * 32), 71);
    const auto k = random_floats(static_cast<std::size_t>(2 * positions * 32), 72);
    const auto v = random_floats(k.size(), 73);
    std::vector<float> fp32(q.size()), bf16(q.size());
    attention_forward(fp32.data(), q.data(), k.data(), v.data(), shape);
    shape.precision = Precision::BF16;
    attention_forward(bf16.data(), q.data(), k.data(), v.data(), shape);
    EXPECT_EQ(bf16, fp32);
}

}  // namespace
}  // namespace kindred::kernels
