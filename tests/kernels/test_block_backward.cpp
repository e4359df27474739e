// A Llama decoder block (RMSNorm, q/k/v projections, RoPE, packed causal GQA attention, o
// projection, residual, RMSNorm, SwiGLU MLP, residual) run forward and then backward by chaining
// the kernels' hand-written backward passes, against torch's gradients of the same block
// (tests/goldens/backward/llama_block.json, written by tools/goldens/backward.py from a
// transformers LlamaDecoderLayer in float64). Run twice: with HF weights and rotate_half pairing,
// and with q/k rows permuted as GGUF stores them and adjacent pairing, which must agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "test_paths.h"

namespace kindred::kernels {
namespace {

using Floats = std::vector<float>;

std::size_t size(std::int64_t n) { return static_cast<std::size_t>(n); }

struct Block {
    std::int64_t tokens = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, ff = 0;
    float eps = 0.0f;
    double theta = 0.0;
    std::vector<std::int32_t> segments, positions;
    Floats x, r, out, grad_x;  // out and d loss / d x from torch
    // HF names: attn_norm, q, k, v, o, ffn_norm, gate, up, down.
    nlohmann::json weights, grads;
};

Block load_block() {
    std::ifstream in(testing::source_path("tests/goldens/backward/llama_block.json"));
    const auto j = nlohmann::json::parse(in);
    const auto& c = j.at("config");
    Block b;
    b.tokens = c.at("tokens");
    b.hidden = c.at("hidden");
    b.heads = c.at("heads");
    b.kv_heads = c.at("kv_heads");
    b.head_dim = c.at("head_dim");
    b.ff = c.at("ff");
    b.eps = c.at("eps").get<float>();
    b.theta = c.at("theta");
    b.segments = j.at("segments").get<std::vector<std::int32_t>>();
    b.positions = j.at("positions").get<std::vector<std::int32_t>>();
    b.x = j.at("x").get<Floats>();
    b.r = j.at("r").get<Floats>();
    b.out = j.at("out").get<Floats>();
    b.grad_x = j.at("grad_x").get<Floats>();
    b.weights = j.at("weights");
    b.grads = j.at("grads");
    return b;
}

// GGUF (arch llama) stores q/k rows of each head permuted: row 2i holds HF row i, row 2i + 1 holds
// HF row i + head_dim / 2. inverse = true maps GGUF-ordered rows back to HF order.
Floats permute_rows(const Floats& m, std::int64_t heads, std::int64_t head_dim, std::int64_t cols, bool inverse) {
    Floats out(m.size());
    const std::int64_t half = head_dim / 2;
    for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t i = 0; i < half; ++i)
            for (std::int64_t j = 0; j < 2; ++j) {
                const std::int64_t gguf_row = h * head_dim + 2 * i + j, hf_row = h * head_dim + i + j * half;
                const std::int64_t from = inverse ? gguf_row : hf_row, to = inverse ? hf_row : gguf_row;
                std::copy_n(m.begin() + from * cols, cols, out.begin() + to * cols);
            }
    return out;
}

struct Gradients {
    Floats dx;
    std::vector<std::pair<std::string, Floats>> weights;  // in HF row order
    Floats out;
};

Gradients run_block(const Block& b, RopePairing pairing) {
    const std::int64_t T = b.tokens, D = b.hidden, H = b.heads, KV = b.kv_heads, HD = b.head_dim, FF = b.ff;
    const std::int64_t QD = H * HD, KD = KV * HD;
    const bool gguf = pairing == RopePairing::Adjacent;
    auto weight = [&](const char* name) { return b.weights.at(name).get<Floats>(); };
    const Floats attn_norm = weight("attn_norm"), ffn_norm = weight("ffn_norm");
    Floats wq = weight("q"), wk = weight("k");
    if (gguf) {
        wq = permute_rows(wq, H, HD, D, false);
        wk = permute_rows(wk, KV, HD, D, false);
    }
    const Floats wv = weight("v"), wo = weight("o"), wg = weight("gate"), wu = weight("up"), wd = weight("down");
    auto matrix = [](const Floats& w, std::int64_t rows, std::int64_t cols) {
        return Matrix{DType::F32, rows, cols, w.data()};
    };

    // Rope tables restart at position 0 for every packed document.
    Floats inv_freq(size(HD / 2)), cos(size(T * HD / 2)), sin(cos.size());
    rope_inverse_frequencies(inv_freq.data(), HD, b.theta);
    for (std::int64_t t = 0; t < T; ++t)
        if (b.positions[size(t)] == 0) {
            std::int64_t n = 1;
            while (t + n < T && b.positions[size(t + n)] != 0) ++n;
            rope_table(cos.data() + t * HD / 2, sin.data() + t * HD / 2, inv_freq.data(), HD, 0, n, 1.0f);
        }
    AttentionShape shape;
    shape.tokens = T;
    shape.heads = H;
    shape.kv_heads = KV;
    shape.head_dim = HD;
    // k and v stay as the projections write them, [tokens x kv_heads x head_dim].
    shape.kv_head_stride = HD;
    shape.kv_position_stride = KD;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(HD));
    shape.segment_ids = b.segments.data();

    // Forward, keeping what the backward needs.
    Floats h1(size(T * D)), rstd1(size(T)), q(size(T * QD)), k(size(T * KD)), v(size(T * KD)), attn(size(T * QD));
    rmsnorm_forward(h1.data(), rstd1.data(), b.x.data(), attn_norm.data(), T, D, b.eps, false);
    matmul_forward(q.data(), h1.data(), matrix(wq, QD, D), nullptr, T);
    matmul_forward(k.data(), h1.data(), matrix(wk, KD, D), nullptr, T);
    matmul_forward(v.data(), h1.data(), matrix(wv, KD, D), nullptr, T);
    rope_forward(q.data(), cos.data(), sin.data(), T, H, HD, HD, pairing);
    rope_forward(k.data(), cos.data(), sin.data(), T, KV, HD, HD, pairing);
    attention_forward(attn.data(), q.data(), k.data(), v.data(), shape);
    Floats x1 = b.x, o(size(T * D));
    matmul_forward(o.data(), attn.data(), matrix(wo, D, QD), nullptr, T);
    residual_forward(x1.data(), o.data(), T * D);
    Floats h2(size(T * D)), rstd2(size(T)), gate(size(T * FF)), up(size(T * FF)), m(size(T * FF));
    rmsnorm_forward(h2.data(), rstd2.data(), x1.data(), ffn_norm.data(), T, D, b.eps, false);
    matmul_forward(gate.data(), h2.data(), matrix(wg, FF, D), nullptr, T);
    matmul_forward(up.data(), h2.data(), matrix(wu, FF, D), nullptr, T);
    gated_activation_forward(m.data(), gate.data(), up.data(), T * FF, GateActivation::Silu);
    Floats out = x1, down(size(T * D));
    matmul_forward(down.data(), m.data(), matrix(wd, D, FF), nullptr, T);
    residual_forward(out.data(), down.data(), T * D);

    // Backward from d out = r. Every backward adds into zeroed (or residual-seeded) buffers.
    Floats dwq(wq.size()), dwk(wk.size()), dwv(wv.size()), dwo(wo.size()), dwg(wg.size()), dwu(wu.size()),
        dwd(wd.size()), d_attn_norm(size(D)), d_ffn_norm(size(D));
    Floats dx1 = b.r;  // the residual passes d out through unchanged
    Floats dm(size(T * FF)), dgate(size(T * FF)), dup(size(T * FF)), dh2(size(T * D));
    matmul_backward_weight(dwd.data(), nullptr, b.r.data(), m.data(), D, FF, T);
    matmul_backward_input(dm.data(), b.r.data(), matrix(wd, D, FF), T);
    gated_activation_backward(dgate.data(), dup.data(), dm.data(), gate.data(), up.data(), T * FF,
                              GateActivation::Silu);
    matmul_backward_weight(dwg.data(), nullptr, dgate.data(), h2.data(), FF, D, T);
    matmul_backward_weight(dwu.data(), nullptr, dup.data(), h2.data(), FF, D, T);
    matmul_backward_input(dh2.data(), dgate.data(), matrix(wg, FF, D), T);
    matmul_backward_input(dh2.data(), dup.data(), matrix(wu, FF, D), T);
    rmsnorm_backward(dx1.data(), d_ffn_norm.data(), dh2.data(), x1.data(), rstd2.data(), ffn_norm.data(), T, D, false);

    Floats dattn(size(T * QD)), dq(size(T * QD)), dk(k.size()), dv(v.size()), dh1(size(T * D));
    matmul_backward_weight(dwo.data(), nullptr, dx1.data(), attn.data(), D, QD, T);
    matmul_backward_input(dattn.data(), dx1.data(), matrix(wo, D, QD), T);
    attention_backward(dq.data(), dk.data(), dv.data(), dattn.data(), q.data(), k.data(), v.data(), shape);
    rope_backward(dq.data(), cos.data(), sin.data(), T, H, HD, HD, pairing);
    rope_backward(dk.data(), cos.data(), sin.data(), T, KV, HD, HD, pairing);
    matmul_backward_weight(dwq.data(), nullptr, dq.data(), h1.data(), QD, D, T);
    matmul_backward_weight(dwk.data(), nullptr, dk.data(), h1.data(), KD, D, T);
    matmul_backward_weight(dwv.data(), nullptr, dv.data(), h1.data(), KD, D, T);
    matmul_backward_input(dh1.data(), dq.data(), matrix(wq, QD, D), T);
    matmul_backward_input(dh1.data(), dk.data(), matrix(wk, KD, D), T);
    matmul_backward_input(dh1.data(), dv.data(), matrix(wv, KD, D), T);
    Floats dx = dx1;
    rmsnorm_backward(dx.data(), d_attn_norm.data(), dh1.data(), b.x.data(), rstd1.data(), attn_norm.data(), T, D,
                     false);
    if (gguf) {
        dwq = permute_rows(dwq, H, HD, D, true);
        dwk = permute_rows(dwk, KV, HD, D, true);
    }
    return {dx,
            {{"attn_norm", d_attn_norm}, {"q", dwq}, {"k", dwk}, {"v", dwv}, {"o", dwo}, {"ffn_norm", d_ffn_norm},
             {"gate", dwg}, {"up", dwu}, {"down", dwd}},
            out};
}

// Tolerance: the golden is float64 from the same float32 inputs; the C++ chain is fp32 through
// ~12 ops whose sums have ≤ 64 terms, so each gradient carries a relative rounding error of a
// few 1e-7 of its terms' magnitudes (gradients reach ~16 here). Measured worst errors are 5.7e-6
// absolute and 0.13 of the bound 2e-5 absolute + 1e-4 relative used below.
void expect_close(const Floats& actual, const Floats& expected, const std::string& what) {
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (std::size_t i = 0; i < actual.size(); ++i)
        ASSERT_NEAR(actual[i], expected[i], 2e-5 + 1e-4 * std::abs(expected[i])) << what << " index " << i;
}

void check_block(RopePairing pairing) {
    const Block b = load_block();
    const Gradients g = run_block(b, pairing);
    expect_close(g.out, b.out, "out");
    expect_close(g.dx, b.grad_x, "d x");
    for (const auto& [name, grad] : g.weights) expect_close(grad, b.grads.at(name).get<Floats>(), "d " + name);
}

TEST(BlockBackward, HfWeightsWithRotateHalfMatchTorch) { check_block(RopePairing::Half); }
TEST(BlockBackward, GgufPermutedQkRowsWithAdjacentPairsMatchTorch) { check_block(RopePairing::Adjacent); }

}  // namespace
}  // namespace kindred::kernels
