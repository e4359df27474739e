// The MoE MLP piece (model/moe_mlp.h) against transformers + PEFT: whole MoE blocks
// (tests/goldens/moe_kernels/moe_block.json, tools/goldens/moe_kernels.py: Qwen3-MoE with
// norm_topk_prob off and on, gpt-oss with router and expert biases and the clamped SwiGLU, LoRA on
// both expert parameters in PEFT's ParamWrapper layout): routing, output, dx and every LoRA
// gradient; and finite differences through the piece, router path included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "../kernels/gradient_check.h"
#include "../kernels/kernel_test_util.h"
#include "core/error.h"
#include "model/moe_mlp.h"
#include "test_paths.h"

namespace kindred::model {
namespace {

using kindred::testing::check_gradient;
using kindred::testing::GradientCheckOptions;
using kindred::testing::random_floats;

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }
std::vector<float> floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

double weighted_sum(const std::vector<float>& out, const std::vector<float>& r) {
    double total = 0.0;
    for (std::size_t i = 0; i < out.size(); ++i) total += static_cast<double>(out[i]) * r[i];
    return total;
}

// A block in our layout (gate and up separate, [out x in] per expert, fp32) and its adapter.
struct Block {
    std::int64_t hidden = 0, inter = 0, experts = 0;
    std::vector<float> router, gate, up, down;
    std::vector<float> a_gate_up, b_gate_up, a_down, b_down;
    MoeWeights weights;
    MoeMlpSpec spec;
    MoeLora lora;

    void bind(std::int64_t rank, float scale) {
        weights.router = {DType::F32, experts, hidden, router.data()};
        auto stack = [&](ExpertStack& s, const std::vector<float>& data, std::int64_t rows, std::int64_t cols) {
            s = {DType::F32, experts, rows, cols, {}};
            kernels::expert_slices(s.slices, data.data(), DType::F32, experts, rows, cols);
        };
        stack(weights.gate, gate, inter, hidden);
        stack(weights.up, up, inter, hidden);
        stack(weights.down, down, hidden, inter);
        lora = {a_gate_up.data(), b_gate_up.data(), a_down.data(), b_down.data(), rank, scale};
    }
};

struct Grads {
    std::vector<float> dx, a_gate_up, b_gate_up, a_down, b_down;
};

Grads backward(const Block& b, const MoeActivations& saved, const std::vector<float>& dy, std::int64_t tokens) {
    Grads g{std::vector<float>(size(tokens * b.hidden), 0.0f), std::vector<float>(b.a_gate_up.size(), 0.0f),
            std::vector<float>(b.b_gate_up.size(), 0.0f), std::vector<float>(b.a_down.size(), 0.0f),
            std::vector<float>(b.b_down.size(), 0.0f)};
    const MoeLoraGrads grads{g.a_gate_up.data(), g.b_gate_up.data(), g.a_down.data(), g.b_down.data()};
    moe_mlp_backward(g.dx.data(), dy.data(), tokens, saved, b.weights, b.spec, &b.lora, &grads);
    return g;
}

// The golden's block in our layout: transformers' Qwen3-MoE gate_up [E, 2n, hidden] holds gate rows
// then up rows per expert; gpt-oss's gate_up [E, hidden, 2n] is transposed with gate in even columns
// (the layouts model/weights.cpp converts HF checkpoints from).
Block block_from_golden(const nlohmann::json& c) {
    Block b;
    b.hidden = c["hidden"];
    b.inter = c["intermediate"];
    b.experts = c["experts"];
    b.router = floats(c["router"]);
    const auto gate_up = floats(c["gate_up"]), down = floats(c["down"]);
    const std::int64_t E = b.experts, n = b.inter, h = b.hidden;
    b.gate.resize(size(E * n * h));
    b.up.resize(b.gate.size());
    b.down.resize(size(E * h * n));
    ModelConfig config;
    config.num_experts_per_token = c["top_k"];
    if (c["family"] == "qwen3_moe") {
        config.architecture = Architecture::Qwen3Moe;
        config.norm_topk_prob = c["norm_topk_prob"];
        for (std::int64_t e = 0; e < E; ++e)
            for (std::int64_t i = 0; i < n * h; ++i) {
                b.gate[size(e * n * h + i)] = gate_up[size(e * 2 * n * h + i)];
                b.up[size(e * n * h + i)] = gate_up[size(e * 2 * n * h + n * h + i)];
            }
        b.down = down;
    } else {
        config.architecture = Architecture::GptOss;
        config.swiglu_alpha = 1.702;
        config.swiglu_limit = 7.0;
        b.weights.router_bias = floats(c["router_bias"]);
        const auto gate_up_bias = floats(c["gate_up_bias"]);
        b.weights.down_bias = floats(c["down_bias"]);
        b.weights.gate_bias.resize(size(E * n));
        b.weights.up_bias.resize(size(E * n));
        for (std::int64_t e = 0; e < E; ++e) {
            for (std::int64_t i = 0; i < n; ++i) {
                b.weights.gate_bias[size(e * n + i)] = gate_up_bias[size(e * 2 * n + 2 * i)];
                b.weights.up_bias[size(e * n + i)] = gate_up_bias[size(e * 2 * n + 2 * i + 1)];
                for (std::int64_t col = 0; col < h; ++col) {
                    b.gate[size((e * n + i) * h + col)] = gate_up[size((e * h + col) * 2 * n + 2 * i)];
                    b.up[size((e * n + i) * h + col)] = gate_up[size((e * h + col) * 2 * n + 2 * i + 1)];
                }
            }
            for (std::int64_t o = 0; o < h; ++o)
                for (std::int64_t i = 0; i < n; ++i) b.down[size((e * h + o) * n + i)] = down[size((e * n + i) * h + o)];
        }
    }
    b.spec = moe_mlp_spec(config);
    b.a_gate_up = floats(c["lora_gate_up_a"]);
    b.b_gate_up = floats(c["lora_gate_up_b"]);
    b.a_down = floats(c["lora_down_a"]);
    b.b_down = floats(c["lora_down_b"]);
    b.bind(c["rank"], c["scaling"]);
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

TEST(MoeMlp, MatchesTransformersAndPeftForEveryFamily) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/moe_kernels/moe_block.json"));
    const auto golden = nlohmann::json::parse(in);
    for (const auto& c : golden["cases"]) {
        SCOPED_TRACE(::testing::Message() << c["family"].get<std::string>() << " norm_topk_prob=" << c["norm_topk_prob"]);
        const Block b = block_from_golden(c);
        const std::int64_t tokens = c["tokens"];
        const auto x = floats(c["x"]);
        std::vector<float> y(x.size());
        MoeActivations saved;
        moe_mlp_forward(y.data(), x.data(), tokens, b.weights, b.spec, &b.lora, saved);
        EXPECT_EQ(saved.chosen, c["chosen"].get<std::vector<std::int32_t>>());
        expect_close(saved.weights, floats(c["weights"]), 1e-6, "routing weights");
        expect_close(y, floats(c["y"]), golden_tolerance, "y");
        const Grads g = backward(b, saved, floats(c["dy"]), tokens);
        expect_close(g.dx, floats(c["dx"]), golden_tolerance, "dx");
        expect_close(g.a_gate_up, floats(c["d_lora_gate_up_a"]), golden_tolerance, "d lora gate_up A");
        expect_close(g.b_gate_up, floats(c["d_lora_gate_up_b"]), golden_tolerance, "d lora gate_up B");
        expect_close(g.a_down, floats(c["d_lora_down_a"]), golden_tolerance, "d lora down A");
        expect_close(g.b_down, floats(c["d_lora_down_b"]), golden_tolerance, "d lora down B");
    }
}

// Finite differences through the piece, router path included, for a small random block of each
// family. Router logits are kept apart (a perturbation of h = 1e-3 · max(1, |x|) moves a logit by far
// less than the gap between any two), so the top-k choice never flips inside a difference.
// fp32 noise: ε_L ≈ 2^-24 · Σ|y·r| ≈ 1e-6 over 2h = 2e-3 gives ~5e-4 at worst; truncation is
// negligible at this h. Hence abs 1e-3, rel 1e-3.
void check_gradients(Architecture architecture, bool normalize) {
    SCOPED_TRACE(::testing::Message() << architecture_name(architecture) << " normalize=" << normalize);
    Block b;
    b.hidden = 6;
    b.inter = 4;
    b.experts = 5;
    const std::int64_t tokens = 4, E = b.experts, rank = 2;
    ModelConfig config;
    config.architecture = architecture;
    config.num_experts_per_token = 2;
    config.norm_topk_prob = normalize;
    config.swiglu_alpha = 1.702;
    config.swiglu_limit = 7.0;
    b.spec = moe_mlp_spec(config);
    b.router = random_floats(size(E * b.hidden), 81, -1.0f, 1.0f);
    b.gate = random_floats(size(E * b.inter * b.hidden), 82, -2.0f, 2.0f);
    b.up = random_floats(b.gate.size(), 83, -2.0f, 2.0f);
    b.down = random_floats(size(E * b.hidden * b.inter), 84, -1.0f, 1.0f);
    if (architecture == Architecture::GptOss) {
        b.weights.router_bias = random_floats(size(E), 85);
        b.weights.gate_bias = random_floats(size(E * b.inter), 86);
        b.weights.up_bias = random_floats(size(E * b.inter), 87);
        b.weights.down_bias = random_floats(size(E * b.hidden), 88);
    }
    b.a_gate_up = random_floats(size(E * rank * b.hidden), 89);
    b.b_gate_up = random_floats(size(2 * b.inter * rank * E), 90);
    b.a_down = random_floats(size(E * rank * b.inter), 91);
    b.b_down = random_floats(size(b.hidden * rank * E), 92);
    b.bind(rank, 1.5f);
    auto x = random_floats(size(tokens * b.hidden), 93);
    const auto r = random_floats(x.size(), 94);
    std::vector<float> y(x.size());
    MoeActivations saved;
    moe_mlp_forward(y.data(), x.data(), tokens, b.weights, b.spec, &b.lora, saved);
    Grads g = backward(b, saved, r, tokens);
    auto loss = [&] {
        MoeActivations s;
        std::vector<float> out(x.size());
        moe_mlp_forward(out.data(), x.data(), tokens, b.weights, b.spec, &b.lora, s);
        EXPECT_EQ(s.chosen, saved.chosen) << "a perturbation flipped the routing";
        return weighted_sum(out, r);
    };
    constexpr GradientCheckOptions options{1e-3, 1e-3, 1e-3};
    for (auto [input, grad, name] : {std::tuple{&x, &g.dx, "x"}, std::tuple{&b.a_gate_up, &g.a_gate_up, "A gate_up"},
                                     std::tuple{&b.b_gate_up, &g.b_gate_up, "B gate_up"},
                                     std::tuple{&b.a_down, &g.a_down, "A down"}, std::tuple{&b.b_down, &g.b_down, "B down"}}) {
        const auto result = check_gradient(*input, *grad, loss, options);
        EXPECT_TRUE(result.passed()) << name << ": " << result.describe();
    }
}

TEST(MoeMlp, BackwardMatchesFiniteDifferences) {
    check_gradients(Architecture::Qwen3Moe, false);
    check_gradients(Architecture::Qwen3Moe, true);
    check_gradients(Architecture::GptOss, false);
}

// Without an adapter the block is the base model's: the same as an adapter whose B factors are
// zero (PEFT's initial state), bit for bit. Dense families have no MoE spec.
TEST(MoeMlp, WithoutAnAdapterTheBaseBlockRuns) {
    std::ifstream in(kindred::testing::source_path("tests/goldens/moe_kernels/moe_block.json"));
    Block b = block_from_golden(nlohmann::json::parse(in)["cases"][2]);
    const std::int64_t tokens = 5;
    const auto x = random_floats(size(tokens * b.hidden), 95);
    std::vector<float> base(x.size()), zero_b(x.size());
    MoeActivations saved;
    moe_mlp_forward(base.data(), x.data(), tokens, b.weights, b.spec, nullptr, saved);
    std::fill(b.b_gate_up.begin(), b.b_gate_up.end(), 0.0f);
    std::fill(b.b_down.begin(), b.b_down.end(), 0.0f);
    moe_mlp_forward(zero_b.data(), x.data(), tokens, b.weights, b.spec, &b.lora, saved);
    EXPECT_EQ(base, zero_b);
    ModelConfig config;
    config.architecture = Architecture::Llama;
    EXPECT_THROW(moe_mlp_spec(config), Error);
}

}  // namespace
}  // namespace kindred::model
