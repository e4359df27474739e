// Tests for kernels/moe.h: whole MoE blocks against transformers + PEFT (tests/goldens/moe_kernels/
// moe_block.json, tools/goldens/moe_kernels.py: Qwen3-MoE with and without norm_topk_prob, gpt-oss
// with router and expert biases and the clamped SwiGLU, LoRA on both expert parameters in PEFT's
// ParamWrapper layout), finite differences of every backward, grouped products against a
// dequantized double reference for every weight type (decode and prefill paths), with the slices
// of unchosen experts unreadable, and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "gradient_check.h"
#include "kernel_test_util.h"
#include "kernels/activations.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "test_paths.h"

namespace kindred::kernels {
namespace {

using testing::check_gradient;
using testing::GradientCheckOptions;
using testing::random_floats;
using testing::random_weights;

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }
std::vector<float> floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

double weighted_sum(const std::vector<float>& out, const std::vector<float>& r) {
    double total = 0.0;
    for (std::size_t i = 0; i < out.size(); ++i) total += static_cast<double>(out[i]) * r[i];
    return total;
}

// One MoE block composed from the kernels the way a decoder composes it, fp32 expert stacks given
// as [experts x rows x cols] arrays in our layout (gate and up separate, [out x in] per expert).
struct Block {
    std::int64_t hidden = 0, inter = 0, experts = 0, top_k = 0, rank = 0;
    RouterKind kind = RouterKind::SoftmaxTopK;
    bool normalize = false;
    bool clamped = false;  // gpt-oss's activation, else SiLU
    float scale = 1.0f;
    std::vector<float> router, router_bias, gate, up, down, gate_bias, up_bias, down_bias;
    // PEFT factors: the fused gate_up adapter (B rows: gate then up when concatenated, alternating
    // when interleaved) and the down adapter.
    std::vector<float> a_gate_up, b_gate_up, a_down, b_down;
    bool interleaved = false;

    std::vector<const void*> gate_slices, up_slices, down_slices;

    void bind() {
        expert_slices(gate_slices, gate.data(), DType::F32, experts, inter, hidden);
        expert_slices(up_slices, up.data(), DType::F32, experts, inter, hidden);
        expert_slices(down_slices, down.data(), DType::F32, experts, hidden, inter);
    }
    ExpertMatrices gates() const { return {DType::F32, experts, inter, hidden, gate_slices.data()}; }
    ExpertMatrices ups() const { return {DType::F32, experts, inter, hidden, up_slices.data()}; }
    ExpertMatrices downs() const { return {DType::F32, experts, hidden, inter, down_slices.data()}; }
    ExpertLoraRows gate_rows() const { return interleaved ? ExpertLoraRows{0, 2, inter} : ExpertLoraRows{0, 1, inter}; }
    ExpertLoraRows up_rows() const { return interleaved ? ExpertLoraRows{1, 2, inter} : ExpertLoraRows{inter, 1, inter}; }
    ExpertLoraShape gate_up_lora() const { return {experts, hidden, 2 * inter, rank, scale}; }
    ExpertLoraShape down_lora() const { return {experts, inter, hidden, rank, scale}; }
    RouterShape route(std::int64_t tokens) const { return {tokens, experts, top_k, kind, normalize}; }
    const float* bias_or_null(const std::vector<float>& b) const { return b.empty() ? nullptr : b.data(); }
};

struct Saved {
    std::vector<float> logits, weights, rows_x, gate, up, act, xa_gate_up, xa_down, out;
    std::vector<std::int32_t> chosen;
    ExpertGroups groups;
};

void block_forward(std::vector<float>& y, Saved& s, const Block& b, const std::vector<float>& x, std::int64_t tokens) {
    const std::int64_t rows = tokens * b.top_k;
    s.logits.assign(size(tokens * b.experts), 0.0f);
    matmul_forward(s.logits.data(), x.data(), Matrix{DType::F32, b.experts, b.hidden, b.router.data()},
                   b.bias_or_null(b.router_bias), tokens);
    s.chosen.assign(size(rows), 0);
    s.weights.assign(size(rows), 0.0f);
    moe_route_forward(s.chosen.data(), s.weights.data(), s.logits.data(), b.route(tokens));
    moe_group(s.groups, s.chosen.data(), tokens, b.top_k, b.experts);
    s.rows_x.assign(size(rows * b.hidden), 0.0f);
    moe_gather(s.rows_x.data(), x.data(), s.groups, b.hidden);
    s.gate.assign(size(rows * b.inter), 0.0f);
    s.up.assign(s.gate.size(), 0.0f);
    expert_matmul_forward(s.gate.data(), s.rows_x.data(), b.gates(), b.bias_or_null(b.gate_bias), s.groups);
    expert_matmul_forward(s.up.data(), s.rows_x.data(), b.ups(), b.bias_or_null(b.up_bias), s.groups);
    s.xa_gate_up.assign(size(rows * b.rank), 0.0f);
    expert_lora_down_forward(s.xa_gate_up.data(), s.rows_x.data(), b.a_gate_up.data(), s.groups, b.gate_up_lora());
    expert_lora_up_forward(s.gate.data(), s.xa_gate_up.data(), b.b_gate_up.data(), b.gate_rows(), s.groups,
                           b.gate_up_lora());
    expert_lora_up_forward(s.up.data(), s.xa_gate_up.data(), b.b_gate_up.data(), b.up_rows(), s.groups, b.gate_up_lora());
    s.act.assign(s.gate.size(), 0.0f);
    if (b.clamped)
        clamped_swiglu_forward(s.act.data(), s.gate.data(), s.up.data(), rows * b.inter, {});
    else
        gated_activation_forward(s.act.data(), s.gate.data(), s.up.data(), rows * b.inter, GateActivation::Silu);
    s.out.assign(size(rows * b.hidden), 0.0f);
    expert_matmul_forward(s.out.data(), s.act.data(), b.downs(), b.bias_or_null(b.down_bias), s.groups);
    s.xa_down.assign(size(rows * b.rank), 0.0f);
    expert_lora_down_forward(s.xa_down.data(), s.act.data(), b.a_down.data(), s.groups, b.down_lora());
    expert_lora_up_forward(s.out.data(), s.xa_down.data(), b.b_down.data(), {0, 1, b.hidden}, s.groups, b.down_lora());
    y.assign(size(tokens * b.hidden), 0.0f);
    moe_combine_forward(y.data(), s.out.data(), s.weights.data(), s.groups, b.hidden);
}

struct Grads {
    std::vector<float> dx, da_gate_up, db_gate_up, da_down, db_down;
};

Grads block_backward(const Saved& s, const Block& b, const std::vector<float>& dy, std::int64_t tokens) {
    const std::int64_t rows = tokens * b.top_k;
    Grads g;
    g.dx.assign(size(tokens * b.hidden), 0.0f);
    g.da_gate_up.assign(b.a_gate_up.size(), 0.0f);
    g.db_gate_up.assign(b.b_gate_up.size(), 0.0f);
    g.da_down.assign(b.a_down.size(), 0.0f);
    g.db_down.assign(b.b_down.size(), 0.0f);
    std::vector<float> dout(size(rows * b.hidden)), dweights(size(rows));
    moe_combine_backward(dout.data(), dweights.data(), dy.data(), s.out.data(), s.weights.data(), s.groups, b.hidden);
    std::vector<float> dxa(size(rows * b.rank), 0.0f), dact(size(rows * b.inter), 0.0f);
    expert_lora_up_backward(dxa.data(), g.db_down.data(), dout.data(), s.xa_down.data(), b.b_down.data(),
                            {0, 1, b.hidden}, s.groups, b.down_lora());
    expert_lora_down_backward(dact.data(), g.da_down.data(), dxa.data(), s.act.data(), b.a_down.data(), s.groups,
                              b.down_lora());
    expert_matmul_backward_input(dact.data(), dout.data(), b.downs(), s.groups);
    std::vector<float> dgate(dact.size(), 0.0f), dup(dact.size(), 0.0f);
    if (b.clamped)
        clamped_swiglu_backward(dgate.data(), dup.data(), dact.data(), s.gate.data(), s.up.data(), rows * b.inter, {});
    else
        gated_activation_backward(dgate.data(), dup.data(), dact.data(), s.gate.data(), s.up.data(), rows * b.inter,
                                  GateActivation::Silu);
    std::fill(dxa.begin(), dxa.end(), 0.0f);
    expert_lora_up_backward(dxa.data(), g.db_gate_up.data(), dgate.data(), s.xa_gate_up.data(), b.b_gate_up.data(),
                            b.gate_rows(), s.groups, b.gate_up_lora());
    expert_lora_up_backward(dxa.data(), g.db_gate_up.data(), dup.data(), s.xa_gate_up.data(), b.b_gate_up.data(),
                            b.up_rows(), s.groups, b.gate_up_lora());
    std::vector<float> drows(size(rows * b.hidden), 0.0f);
    expert_lora_down_backward(drows.data(), g.da_gate_up.data(), dxa.data(), s.rows_x.data(), b.a_gate_up.data(),
                              s.groups, b.gate_up_lora());
    expert_matmul_backward_input(drows.data(), dgate.data(), b.gates(), s.groups);
    expert_matmul_backward_input(drows.data(), dup.data(), b.ups(), s.groups);
    moe_gather_backward(g.dx.data(), drows.data(), s.groups, b.hidden);
    // The router is frozen, but its weights depend on x.
    std::vector<float> dlogits(size(tokens * b.experts), 0.0f);
    moe_route_backward(dlogits.data(), dweights.data(), s.logits.data(), s.chosen.data(), s.weights.data(),
                       b.route(tokens));
    matmul_backward_input(g.dx.data(), dlogits.data(), Matrix{DType::F32, b.experts, b.hidden, b.router.data()}, tokens);
    return g;
}

// The golden's block in our layout: transformers' Qwen3-MoE gate_up [E, 2n, hidden] holds gate rows
// then up rows per expert; gpt-oss's gate_up [E, hidden, 2n] is transposed with gate in even columns.
Block block_from_golden(const nlohmann::json& c) {
    Block b;
    b.hidden = c["hidden"];
    b.inter = c["intermediate"];
    b.experts = c["experts"];
    b.top_k = c["top_k"];
    b.rank = c["rank"];
    b.scale = c["scaling"];
    b.router = floats(c["router"]);
    const auto gate_up = floats(c["gate_up"]), down = floats(c["down"]);
    const std::int64_t E = b.experts, n = b.inter, h = b.hidden;
    b.gate.resize(size(E * n * h));
    b.up.resize(b.gate.size());
    b.down.resize(size(E * h * n));
    if (c["family"] == "qwen3_moe") {
        b.kind = RouterKind::SoftmaxTopK;
        b.normalize = c["norm_topk_prob"];
        for (std::int64_t e = 0; e < E; ++e)
            for (std::int64_t i = 0; i < n * h; ++i) {
                b.gate[size(e * n * h + i)] = gate_up[size(e * 2 * n * h + i)];
                b.up[size(e * n * h + i)] = gate_up[size(e * 2 * n * h + n * h + i)];
            }
        b.down = down;
    } else {
        b.kind = RouterKind::TopKSoftmax;
        b.clamped = true;
        b.interleaved = true;
        b.router_bias = floats(c["router_bias"]);
        const auto gate_up_bias = floats(c["gate_up_bias"]);
        b.down_bias = floats(c["down_bias"]);
        b.gate_bias.resize(size(E * n));
        b.up_bias.resize(size(E * n));
        for (std::int64_t e = 0; e < E; ++e) {
            for (std::int64_t i = 0; i < n; ++i) {
                b.gate_bias[size(e * n + i)] = gate_up_bias[size(e * 2 * n + 2 * i)];
                b.up_bias[size(e * n + i)] = gate_up_bias[size(e * 2 * n + 2 * i + 1)];
                for (std::int64_t col = 0; col < h; ++col) {
                    b.gate[size((e * n + i) * h + col)] = gate_up[size((e * h + col) * 2 * n + 2 * i)];
                    b.up[size((e * n + i) * h + col)] = gate_up[size((e * h + col) * 2 * n + 2 * i + 1)];
                }
            }
            for (std::int64_t o = 0; o < h; ++o)
                for (std::int64_t i = 0; i < n; ++i) b.down[size((e * h + o) * n + i)] = down[size((e * n + i) * h + o)];
        }
    }
    b.a_gate_up = floats(c["lora_gate_up_a"]);
    b.b_gate_up = floats(c["lora_gate_up_b"]);
    b.a_down = floats(c["lora_down_a"]);
    b.b_down = floats(c["lora_down_b"]);
    b.bind();
    return b;
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance,
                  const char* what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    double scale = 0.0;
    for (float v : expected) scale = std::max(scale, static_cast<double>(std::abs(v)));
    for (std::size_t i = 0; i < actual.size(); ++i)
        ASSERT_NEAR(actual[i], expected[i], tolerance * std::max(1.0, scale)) << what << " index " << i;
}

// Tolerance relative to each tensor's largest entry: fp32 chains of a few dozen products and sums
// (router, two expert products, LoRA, combine) against float64 references whose routers also ran
// in float32 (transformers casts the router softmax). Measured worst: 3.7e-7 of the largest entry
// (routing weights: 1.2e-7 absolute); 1e-5 is a wide margin above fp32 rounding and far below any
// layout mistake (a swapped expert or gate/up row changes entries by O(1)).
constexpr double golden_tolerance = 1e-5;

TEST(MoeBlock, MatchesTransformersAndPeftForEveryFamily) {
    std::ifstream in(testing::source_path("tests/goldens/moe_kernels/moe_block.json"));
    const auto golden = nlohmann::json::parse(in);
    for (const auto& c : golden["cases"]) {
        SCOPED_TRACE(::testing::Message() << c["family"].get<std::string>() << " norm_topk_prob=" << c["norm_topk_prob"]);
        const Block b = block_from_golden(c);
        const std::int64_t tokens = c["tokens"];
        const auto x = floats(c["x"]);
        std::vector<float> y;
        Saved saved;
        block_forward(y, saved, b, x, tokens);
        EXPECT_EQ(saved.chosen, c["chosen"].get<std::vector<std::int32_t>>());
        expect_close(saved.weights, floats(c["weights"]), 1e-6, "routing weights");
        expect_close(y, floats(c["y"]), golden_tolerance, "y");
        const Grads g = block_backward(saved, b, floats(c["dy"]), tokens);
        expect_close(g.dx, floats(c["dx"]), golden_tolerance, "dx");
        expect_close(g.da_gate_up, floats(c["d_lora_gate_up_a"]), golden_tolerance, "d lora gate_up A");
        expect_close(g.db_gate_up, floats(c["d_lora_gate_up_b"]), golden_tolerance, "d lora gate_up B");
        expect_close(g.da_down, floats(c["d_lora_down_a"]), golden_tolerance, "d lora down A");
        expect_close(g.db_down, floats(c["d_lora_down_b"]), golden_tolerance, "d lora down B");
    }
}

// Finite differences through the whole block, router path included, for a small random block of
// each kind. Router logits are kept apart (a perturbation of h = 1e-3 · max(1, |x|) moves a logit
// by far less than the gap between any two), so the top-k choice never flips inside a difference.
// fp32 noise: ε_L ≈ 2^-24 · Σ|y·r| ≈ 1e-6 over 2h = 2e-3 gives ~5e-4 at worst; truncation is
// negligible at this h. Hence abs 1e-3, rel 1e-3.
void check_block_gradients(RouterKind kind, bool normalize, bool clamped) {
    SCOPED_TRACE(::testing::Message() << "kind=" << static_cast<int>(kind) << " normalize=" << normalize);
    Block b;
    b.hidden = 6;
    b.inter = 4;
    b.experts = 5;
    b.top_k = 2;
    b.rank = 2;
    b.kind = kind;
    b.normalize = normalize;
    b.clamped = clamped;
    b.interleaved = clamped;
    b.scale = 1.5f;
    const std::int64_t tokens = 4, E = b.experts;
    b.router = random_floats(size(E * b.hidden), 81, -1.0f, 1.0f);
    b.gate = random_floats(size(E * b.inter * b.hidden), 82, -2.0f, 2.0f);
    b.up = random_floats(b.gate.size(), 83, -2.0f, 2.0f);
    b.down = random_floats(size(E * b.hidden * b.inter), 84, -1.0f, 1.0f);
    if (clamped) {
        b.router_bias = random_floats(size(E), 85);
        b.gate_bias = random_floats(size(E * b.inter), 86);
        b.up_bias = random_floats(size(E * b.inter), 87);
        b.down_bias = random_floats(size(E * b.hidden), 88);
    }
    b.a_gate_up = random_floats(size(E * b.rank * b.hidden), 89);
    b.b_gate_up = random_floats(size(2 * b.inter * b.rank * E), 90);
    b.a_down = random_floats(size(E * b.rank * b.inter), 91);
    b.b_down = random_floats(size(b.hidden * b.rank * E), 92);
    b.bind();
    auto x = random_floats(size(tokens * b.hidden), 93);
    const auto r = random_floats(x.size(), 94);
    std::vector<float> y;
    Saved saved;
    block_forward(y, saved, b, x, tokens);
    Grads g = block_backward(saved, b, r, tokens);
    auto loss = [&] {
        Saved s;
        std::vector<float> out;
        block_forward(out, s, b, x, tokens);
        EXPECT_EQ(s.chosen, saved.chosen) << "a perturbation flipped the routing";
        return weighted_sum(out, r);
    };
    constexpr GradientCheckOptions options{1e-3, 1e-3, 1e-3};
    for (auto [input, grad, name] : {std::tuple{&x, &g.dx, "x"}, std::tuple{&b.a_gate_up, &g.da_gate_up, "A gate_up"},
                                     std::tuple{&b.b_gate_up, &g.db_gate_up, "B gate_up"},
                                     std::tuple{&b.a_down, &g.da_down, "A down"}, std::tuple{&b.b_down, &g.db_down, "B down"}}) {
        const auto result = check_gradient(*input, *grad, loss, options);
        EXPECT_TRUE(result.passed()) << name << ": " << result.describe();
    }
}

TEST(MoeBlock, BackwardMatchesFiniteDifferences) {
    check_block_gradients(RouterKind::SoftmaxTopK, false, false);
    check_block_gradients(RouterKind::SoftmaxTopK, true, false);
    check_block_gradients(RouterKind::TopKSoftmax, false, true);
}

// Grouped products against each expert's dequantized matrix in double, every type the experts of
// released models come in, for decode (1 token), the mat-vec path (3) and panels (40); experts
// nobody chose have no slice at all (null), so reading one would crash.
TEST(ExpertMatmul, EveryWeightTypeForwardAndInputGradientTouchOnlyChosenExperts) {
    for (DType type : {DType::F32, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::MXFP4}) {
        const std::int64_t experts = 6, top_k = 2, rows = 20;
        const std::int64_t cols = type == DType::Q4_K ? 256 : 64;
        for (std::int64_t tokens : {1, 3, 40}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(type) << " tokens=" << tokens);
            std::vector<std::vector<std::uint8_t>> bytes;
            std::vector<std::vector<float>> dense;
            for (std::int64_t e = 0; e < experts; ++e) {
                bytes.push_back(random_weights(type, rows, cols, static_cast<std::uint32_t>(100 + e)));
                dense.push_back(testing::dequantized_weights(type, bytes.back(), rows, cols));
            }
            // Experts 1 and 4 are never chosen.
            std::vector<std::int32_t> chosen(size(tokens * top_k));
            const std::int32_t pool[] = {0, 2, 3, 5};
            for (std::int64_t t = 0; t < tokens; ++t) {
                chosen[size(t * top_k)] = pool[t % 4];
                chosen[size(t * top_k + 1)] = pool[(t + 1 + (t / 4) % 3) % 4];
            }
            std::vector<const void*> slices(size(experts));
            for (std::int64_t e = 0; e < experts; ++e) slices[size(e)] = (e == 1 || e == 4) ? nullptr : bytes[size(e)].data();
            const ExpertMatrices w{type, experts, rows, cols, slices.data()};
            ExpertGroups groups;
            moe_group(groups, chosen.data(), tokens, top_k, experts);
            EXPECT_EQ(groups.offsets[2] - groups.offsets[1], 0);
            const auto x = random_floats(size(groups.rows() * cols), 7);
            const auto bias = random_floats(size(experts * rows), 8);
            std::vector<float> y(size(groups.rows() * rows));
            expert_matmul_forward(y.data(), x.data(), w, bias.data(), groups);
            const auto dy = random_floats(y.size(), 9);
            std::vector<float> dx(x.size(), 0.5f);
            expert_matmul_backward_input(dx.data(), dy.data(), w, groups);
            for (std::int64_t e = 0; e < experts; ++e)
                for (std::int64_t row = groups.offsets[size(e)]; row < groups.offsets[size(e + 1)]; ++row) {
                    ASSERT_EQ(chosen[size(groups.slot_of_row[size(row)])], e);
                    const auto& m = dense[size(e)];
                    // Tolerance as test_matmul's: fp32 sums of ≤ 256 terms against double, 2e-5 of Σ|terms|.
                    for (std::int64_t o = 0; o < rows; ++o) {
                        double expected = bias[size(e * rows + o)], magnitude = 0.0;
                        for (std::int64_t i = 0; i < cols; ++i) {
                            const double term = static_cast<double>(x[size(row * cols + i)]) * m[size(o * cols + i)];
                            expected += term;
                            magnitude += std::abs(term);
                        }
                        ASSERT_NEAR(y[size(row * rows + o)], expected, 2e-5 * magnitude + 1e-6);
                    }
                    for (std::int64_t i = 0; i < cols; ++i) {
                        double expected = 0.5, magnitude = 0.0;
                        for (std::int64_t o = 0; o < rows; ++o) {
                            const double term = static_cast<double>(dy[size(row * rows + o)]) * m[size(o * cols + i)];
                            expected += term;
                            magnitude += std::abs(term);
                        }
                        ASSERT_NEAR(dx[size(row * cols + i)], expected, 2e-5 * magnitude + 1e-6);
                    }
                }
        }
    }
}

TEST(MoeRouting, TopKOrderAndTiesFollowTorch) {
    // Token 0: distinct logits; token 1: a tie between experts 1 and 3 (lower id first).
    const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.0f, 0.5f, 1.5f, 0.0f, 1.5f};
    std::vector<std::int32_t> chosen(4);
    std::vector<float> weights(4);
    moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 2, RouterKind::TopKSoftmax, false});
    EXPECT_EQ(chosen, (std::vector<std::int32_t>{1, 3, 1, 3}));
    EXPECT_NEAR(weights[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
    EXPECT_FLOAT_EQ(weights[2], 0.5f);
    // SoftmaxTopK without normalisation keeps the full softmax's probabilities.
    moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 2, RouterKind::SoftmaxTopK, false});
    const double z = std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.0);
    EXPECT_NEAR(weights[0], std::exp(2.0) / z, 1e-7);
    EXPECT_NEAR(weights[1], std::exp(1.0) / z, 1e-7);
}

TEST(MoeRouting, RejectsBadShapesAndChoices) {
    const std::vector<float> logits(8, 0.0f);
    std::vector<std::int32_t> chosen(8);
    std::vector<float> weights(8);
    EXPECT_THROW(moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 5, RouterKind::SoftmaxTopK, true}),
                 Error);
    EXPECT_THROW(moe_route_forward(chosen.data(), weights.data(), logits.data(), {2, 4, 0, RouterKind::TopKSoftmax, true}),
                 Error);
    std::vector<float> nan_logits(4, std::nanf(""));
    EXPECT_THROW(moe_route_forward(chosen.data(), weights.data(), nan_logits.data(), {1, 4, 2, RouterKind::TopKSoftmax, true}),
                 Error);
    ExpertGroups groups;
    const std::vector<std::int32_t> outside = {0, 4}, twice = {2, 2};
    EXPECT_THROW(moe_group(groups, outside.data(), 1, 2, 4), Error);
    EXPECT_THROW(moe_group(groups, twice.data(), 1, 2, 4), Error);
    const std::vector<std::int32_t> fine = {0, 3};
    moe_group(groups, fine.data(), 1, 2, 4);
    std::vector<const void*> slices(3);
    std::vector<float> y(8), x(8);
    EXPECT_THROW(expert_matmul_forward(y.data(), x.data(), {DType::F32, 3, 2, 2, slices.data()}, nullptr, groups), Error);
    std::vector<float> a(8), b(8);
    EXPECT_THROW(expert_lora_up_forward(y.data(), x.data(), b.data(), {1, 2, 2}, groups, {4, 2, 2, 1, 1.0f}), Error);
}

}  // namespace
}  // namespace kindred::kernels
