// model/layer.cpp — the pieces of a decoder layer, forward and backward side by side (see layer.h).
// Backward passes of the kernels ADD into their outputs, so every gradient buffer that is not the
// running residual gradient is zeroed right before it is accumulated.
#include "model/layer.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "kernels/norm.h"

namespace kindred::model {
namespace {

void zero(float* p, std::int64_t n) { std::fill(p, p + n, 0.0f); }

// A sandwich layer normalises a block's branch before the residual add; returns what is added.
const float* post_norm_forward(const LayerShape& shape, const LayerSpec& spec, const float* weight, float* out,
                               float* rstd, const float* branch, std::int64_t tokens) {
    if (spec.norms != NormPlacement::Sandwich) return branch;
    kernels::rmsnorm_forward(out, rstd, branch, weight, tokens, shape.hidden, shape.norm_eps, shape.norm_weight_offset);
    return out;
}

// d/d(branch) given d/d(block output): dy itself, or through the post-norm into `scratch`.
const float* post_norm_backward(const LayerShape& shape, const LayerSpec& spec, const float* weight, float* scratch,
                                const float* dy, const float* branch, const float* rstd, std::int64_t tokens) {
    if (spec.norms != NormPlacement::Sandwich) return dy;
    zero(scratch, tokens * shape.hidden);
    kernels::rmsnorm_backward(scratch, nullptr, dy, branch, rstd, weight, tokens, shape.hidden, shape.norm_weight_offset);
    return scratch;
}

// ---- attention block ----

void attention_forward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, std::span<const RopeRows> rope,
                       LayerOps& ops, std::int64_t l, std::int64_t T, LayerActs& s, const float* x_in) {
    const AttentionSpec& a = spec.attention;
    const float eps = shape.norm_eps;
    const bool offset = shape.norm_weight_offset;
    kernels::rmsnorm_forward(s.n1, s.rstd1, x_in, w.attn_norm, T, shape.hidden, eps, offset);
    ops.linear(l, LoraModule::Q, s, a.qk_norm ? s.q_pre : s.q, s.n1, w.q, w.q_bias, true);
    ops.linear(l, LoraModule::K, s, a.qk_norm ? s.k_pre : s.k, s.n1, w.k, w.k_bias, true);
    ops.linear(l, LoraModule::V, s, s.v, s.n1, w.v, w.v_bias, true);
    if (a.qk_norm) {
        kernels::rmsnorm_forward(s.q, s.rstd_q, s.q_pre, w.q_norm, T * shape.heads, shape.head_dim, eps, offset);
        kernels::rmsnorm_forward(s.k, s.rstd_k, s.k_pre, w.k_norm, T * shape.kv_heads, shape.head_dim, eps, offset);
    }
    const RopeRows& table = rope[static_cast<std::size_t>(a.rope_table)];
    kernels::rope_forward(s.q, table.cos, table.sin, T, shape.heads, shape.head_dim, shape.head_dim, shape.rope_pairing);
    kernels::rope_forward(s.k, table.cos, table.sin, T, shape.kv_heads, shape.head_dim, shape.head_dim, shape.rope_pairing);
    ops.attend(l, spec, s);
    ops.linear(l, LoraModule::O, s, s.attn_out, s.att, w.o, w.o_bias, true);
    const float* branch = post_norm_forward(shape, spec, w.post_attn_norm, s.branch, s.rstd_post1, s.attn_out, T);
    kernels::residual_sum(s.x_mid, x_in, branch, T * shape.hidden);
}

// dx: d/d(x_mid) in, d/d(x_in) out.
void attention_backward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w,
                        std::span<const RopeRows> rope, LayerTrainingOps& ops, std::int64_t l, std::int64_t T,
                        const LayerActs& s, LayerGrads& g, const float* x_in, float* dx) {
    const AttentionSpec& a = spec.attention;
    const bool offset = shape.norm_weight_offset;
    const float* dbranch = post_norm_backward(shape, spec, w.post_attn_norm, g.dbranch, dx, s.attn_out, s.rstd_post1, T);
    zero(g.datt, T * shape.q_dim);
    ops.linear_backward(l, LoraModule::O, s, g.datt, dbranch, s.att, w.o);
    zero(g.dq, T * shape.q_dim);
    zero(g.dk, T * shape.kv_dim);
    zero(g.dv, T * shape.kv_dim);
    ops.attend_backward(l, spec, s, g);
    const RopeRows& table = rope[static_cast<std::size_t>(a.rope_table)];
    kernels::rope_backward(g.dq, table.cos, table.sin, T, shape.heads, shape.head_dim, shape.head_dim, shape.rope_pairing);
    kernels::rope_backward(g.dk, table.cos, table.sin, T, shape.kv_heads, shape.head_dim, shape.head_dim, shape.rope_pairing);
    const float* dq = g.dq;
    const float* dk = g.dk;
    if (a.qk_norm) {
        zero(g.dq_pre, T * shape.q_dim);
        zero(g.dk_pre, T * shape.kv_dim);
        kernels::rmsnorm_backward(g.dq_pre, nullptr, g.dq, s.q_pre, s.rstd_q, w.q_norm, T * shape.heads, shape.head_dim, offset);
        kernels::rmsnorm_backward(g.dk_pre, nullptr, g.dk, s.k_pre, s.rstd_k, w.k_norm, T * shape.kv_heads, shape.head_dim,
                                  offset);
        dq = g.dq_pre;
        dk = g.dk_pre;
    }
    zero(g.dn, T * shape.hidden);
    ops.linear_backward(l, LoraModule::Q, s, g.dn, dq, s.n1, w.q);
    ops.linear_backward(l, LoraModule::K, s, g.dn, dk, s.n1, w.k);
    ops.linear_backward(l, LoraModule::V, s, g.dn, g.dv, s.n1, w.v);
    kernels::rmsnorm_backward(dx, nullptr, g.dn, x_in, s.rstd1, w.attn_norm, T, shape.hidden, offset);
}

// ---- MLP block ----

// mlp_out = down(act(gate(n2)) · up(n2)); with base_down false only the down adapter's state.
void dense_mlp_forward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, LayerOps& ops,
                       std::int64_t l, std::int64_t T, LayerActs& s, bool base_down) {
    ops.linear(l, LoraModule::Gate, s, s.gate, s.n2, w.gate, nullptr, true);
    ops.linear(l, LoraModule::Up, s, s.up, s.n2, w.up, nullptr, true);
    kernels::gated_activation_forward(s.h, s.gate, s.up, T * shape.ff, spec.mlp.activation);
    ops.linear(l, LoraModule::Down, s, s.mlp_out, s.h, w.down, nullptr, base_down);
}

// g.dn = d/d(n2) given dmlp_out.
void dense_mlp_backward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, LayerTrainingOps& ops,
                        std::int64_t l, std::int64_t T, const LayerActs& s, LayerGrads& g, const float* dmlp_out) {
    zero(g.dh, T * shape.ff);
    ops.linear_backward(l, LoraModule::Down, s, g.dh, dmlp_out, s.h, w.down);
    zero(g.dgate, T * shape.ff);
    zero(g.dup, T * shape.ff);
    kernels::gated_activation_backward(g.dgate, g.dup, g.dh, s.gate, s.up, T * shape.ff, spec.mlp.activation);
    zero(g.dn, T * shape.hidden);
    ops.linear_backward(l, LoraModule::Gate, s, g.dn, g.dgate, s.n2, w.gate);
    ops.linear_backward(l, LoraModule::Up, s, g.dn, g.dup, s.n2, w.up);
}

// x_out = x_mid + MLP branch; x_out null: a recomputation (see layer_forward).
void mlp_forward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, LayerOps& ops, std::int64_t l,
                 std::int64_t T, LayerActs& s, float* x_out) {
    kernels::rmsnorm_forward(s.n2, s.rstd2, s.x_mid, w.ffn_norm, T, shape.hidden, shape.norm_eps, shape.norm_weight_offset);
    if (spec.mlp.kind == MlpSpec::Kind::MixtureOfExperts) {
        ops.experts(l, spec.mlp.moe, w.moe, s, s.mlp_out, s.n2);
    } else {
        // Backward reads the down projection's output only through a post-norm.
        const bool sandwich = spec.norms == NormPlacement::Sandwich;
        dense_mlp_forward(shape, spec, w, ops, l, T, s, x_out != nullptr || sandwich);
    }
    const float* branch = post_norm_forward(shape, spec, w.post_ffn_norm, s.branch, s.rstd_post2, s.mlp_out, T);
    if (x_out != nullptr) kernels::residual_sum(x_out, s.x_mid, branch, T * shape.hidden);
}

// dx: d/d(layer output) in, d/d(x_mid) out.
void mlp_backward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, LayerTrainingOps& ops,
                  std::int64_t l, std::int64_t T, const LayerActs& s, LayerGrads& g, float* dx) {
    const float* dbranch = post_norm_backward(shape, spec, w.post_ffn_norm, g.dbranch, dx, s.mlp_out, s.rstd_post2, T);
    if (spec.mlp.kind == MlpSpec::Kind::MixtureOfExperts) {
        zero(g.dn, T * shape.hidden);
        ops.experts_backward(l, spec.mlp.moe, w.moe, s, g.dn, dbranch);
    } else {
        dense_mlp_backward(shape, spec, w, ops, l, T, s, g, dbranch);
    }
    kernels::rmsnorm_backward(dx, nullptr, g.dn, s.x_mid, s.rstd2, w.ffn_norm, T, shape.hidden, shape.norm_weight_offset);
}

// in and out features of `module` in a layer, or {0, 0} when the layer lacks it.
std::pair<std::int64_t, std::int64_t> module_features(const LayerWeights& w, LoraModule module) {
    if (module == LoraModule::ExpertsGateUp) return {w.moe.gate.cols, 2 * w.moe.gate.rows};
    if (module == LoraModule::ExpertsDown) return {w.moe.down.cols, w.moe.down.rows};
    const kernels::Matrix* dense = dense_weight(w, module);
    return dense == nullptr ? std::pair<std::int64_t, std::int64_t>{0, 0} : std::pair{dense->cols, dense->rows};
}

}  // namespace

const kernels::Matrix* dense_weight(const LayerWeights& w, LoraModule module) {
    const kernels::Matrix* dense = nullptr;
    switch (module) {
        case LoraModule::Q: dense = &w.q; break;
        case LoraModule::K: dense = &w.k; break;
        case LoraModule::V: dense = &w.v; break;
        case LoraModule::O: dense = &w.o; break;
        case LoraModule::Gate: dense = &w.gate; break;
        case LoraModule::Up: dense = &w.up; break;
        case LoraModule::Down: dense = &w.down; break;
        case LoraModule::ExpertsGateUp:
        case LoraModule::ExpertsDown: return nullptr;
    }
    return dense->data == nullptr ? nullptr : dense;
}

void check_adapter_fits(const LoraAdapters& adapters, std::span<const LayerWeights> layers, const std::string& source) {
    for (std::size_t l = 0; l < layers.size(); ++l)
        for (int m = 0; m < lora_module_count; ++m) {
            const auto module = static_cast<LoraModule>(m);
            const auto layer = static_cast<std::int64_t>(l);
            if (adapters.a(layer, module) == nullptr) continue;
            const auto [in, out] = module_features(layers[l], module);
            if (in == 0) fail("{}: the adapter has module {} in layer {}, which the model's layer lacks", source,
                              lora_module_name(module), l);
            if (adapters.in_features(module) != in || adapters.out_features(module) != out)
                fail("{}: the adapter's module {} maps {} -> {} features, the model's {} -> {}", source,
                     lora_module_name(module), adapters.in_features(module), adapters.out_features(module), in, out);
            if (is_expert_module(module) && adapters.experts() != layers[l].moe.gate.experts)
                fail("{}: the adapter's module {} has {} experts, the model's layer {} has {}", source,
                     lora_module_name(module), adapters.experts(), l, layers[l].moe.gate.experts);
        }
}

void layer_forward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, std::span<const RopeRows> rope,
                   LayerOps& ops, std::int64_t layer, std::int64_t tokens, LayerActs& s, const float* x_in, float* x_out) {
    attention_forward(shape, spec, w, rope, ops, layer, tokens, s, x_in);
    mlp_forward(shape, spec, w, ops, layer, tokens, s, x_out);
}

void layer_backward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w,
                    std::span<const RopeRows> rope, LayerTrainingOps& ops, std::int64_t layer, std::int64_t tokens,
                    const LayerActs& s, LayerGrads& g, const float* x_in, float* dx) {
    mlp_backward(shape, spec, w, ops, layer, tokens, s, g, dx);
    attention_backward(shape, spec, w, rope, ops, layer, tokens, s, g, x_in, dx);
}

}  // namespace kindred::model
