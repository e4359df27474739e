// gpt-oss's attention with sink logits (forward and backward, full and sliding window) and its
// clamped SwiGLU against transformers (tests/goldens/moe_kernels/{sinks_attention,clamped_swiglu}.json,
// written by tools/goldens/moe_kernels.py in float64 from float32-exact inputs).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/activations.h"
#include "kernels/attention.h"
#include "test_paths.h"

namespace kindred::kernels {
namespace {

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }
std::vector<float> floats(const nlohmann::json& j) { return j.get<std::vector<float>>(); }

nlohmann::json golden(const char* name) {
    std::ifstream in(testing::source_path(std::string("tests/goldens/moe_kernels/") + name));
    return nlohmann::json::parse(in);
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance,
                  const char* what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (std::size_t i = 0; i < actual.size(); ++i) ASSERT_NEAR(actual[i], expected[i], tolerance) << what << " " << i;
}

// Inputs ~N(0, 1), head_dim 8: scores of a few units, sums of ≤ 11 positions; fp32 rounding of the
// softmax and the products stays below 1e-6 of values of order 1 (measured worst 4e-7), so 1e-5.
TEST(AttentionSinks, ForwardAndBackwardMatchTransformersEagerAttention) {
    const auto g = golden("sinks_attention.json");
    const std::int64_t tokens = g["tokens"], heads = g["heads"], kv_heads = g["kv_heads"], head_dim = g["head_dim"];
    const auto q = floats(g["q"]), k = floats(g["k"]), v = floats(g["v"]), sinks = floats(g["sinks"]);
    const auto dout = floats(g["dout"]);
    for (const auto& c : g["cases"]) {
        SCOPED_TRACE(::testing::Message() << "window=" << c["window"]);
        AttentionShape shape;
        shape.tokens = tokens;
        shape.heads = heads;
        shape.kv_heads = kv_heads;
        shape.head_dim = head_dim;
        shape.kv_head_stride = tokens * head_dim;
        shape.scale = g["scale"];
        shape.window = c["window"];
        shape.sinks = sinks.data();
        std::vector<float> out(q.size()), dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
        attention_forward(out.data(), q.data(), k.data(), v.data(), shape);
        expect_close(out, floats(c["out"]), 1e-5, "out");
        attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), shape);
        expect_close(dq, floats(c["dq"]), 1e-5, "dq");
        expect_close(dk, floats(c["dk"]), 1e-5, "dk");
        expect_close(dv, floats(c["dv"]), 1e-5, "dv");
    }
}

// Outputs up to 7 · 8 = 56 and gradients up to ~10: fp32 rounding of exp and the products is
// ~1e-7 relative, so 1e-5 relative to max(1, |value|).
TEST(ClampedSwiglu, MatchesTransformersApplyGateOnTheInterleavedTensor) {
    const auto g = golden("clamped_swiglu.json");
    const std::int64_t rows = g["rows"], width = g["width"];
    const auto gate_up = floats(g["gate_up"]), dout = floats(g["dout"]);
    const auto expected = floats(g["out"]), expected_grad = floats(g["dgate_up"]);
    const ClampedSwiglu params{g["alpha"].get<float>(), g["limit"].get<float>()};
    // The fused tensor interleaves gate (even columns) and up (odd columns).
    std::vector<float> gate(size(rows * width)), up(gate.size());
    for (std::int64_t i = 0; i < rows * width; ++i) {
        gate[size(i)] = gate_up[size(2 * i)];
        up[size(i)] = gate_up[size(2 * i + 1)];
    }
    std::vector<float> out(gate.size()), dgate(gate.size(), 0.0f), dup(gate.size(), 0.0f);
    clamped_swiglu_forward(out.data(), gate.data(), up.data(), rows * width, params);
    clamped_swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), rows * width, params);
    for (std::int64_t i = 0; i < rows * width; ++i) {
        const auto near = [](double a, double b) { return std::abs(a - b) <= 1e-5 * std::max(1.0, std::abs(b)); };
        EXPECT_TRUE(near(out[size(i)], expected[size(i)])) << i << ": " << out[size(i)] << " vs " << expected[size(i)];
        EXPECT_TRUE(near(dgate[size(i)], expected_grad[size(2 * i)])) << "dgate " << i;
        EXPECT_TRUE(near(dup[size(i)], expected_grad[size(2 * i + 1)])) << "dup " << i;
    }
}

}  // namespace
}  // namespace kindred::kernels
