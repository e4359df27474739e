// model/family.cpp — ModelConfig's family switches resolved into a ModelSpec (see family.h).
#include "model/family.h"

#include <cmath>

#include "core/error.h"
#include "kernels/rope.h"
#include "model/moe_mlp.h"
#include "model/rope_frequencies.h"

namespace kindred::model {
namespace {

kernels::GateActivation gate_activation(Activation activation) {
    switch (activation) {
        case Activation::Silu: return kernels::GateActivation::Silu;
        case Activation::GeluTanh: return kernels::GateActivation::GeluTanh;
    }
    fail("unknown activation");
}

}  // namespace

ModelSpec resolve_model_spec(const ModelConfig& config, bool qk_interleaved, const std::string& source) {
    ModelSpec spec;
    LayerShape& shape = spec.shape;
    shape.hidden = config.hidden_size;
    shape.heads = config.num_heads;
    shape.kv_heads = config.num_kv_heads;
    shape.head_dim = config.head_dim;
    shape.q_dim = config.num_heads * config.head_dim;
    shape.kv_dim = config.num_kv_heads * config.head_dim;
    // Only dense MLP layers are intermediate_size wide (a Qwen3-MoE config carries one even when
    // every layer is mixture-of-experts); the experts' widths are their stacks'.
    bool any_dense = false;
    for (std::int64_t l = 0; l < config.num_layers; ++l) any_dense = any_dense || !config.moe_layer(l);
    shape.ff = any_dense ? config.intermediate_size : 0;
    shape.norm_eps = static_cast<float>(config.rms_norm_eps);
    shape.norm_weight_offset = config.norm_weight_offset;
    shape.rope_pairing = qk_interleaved ? kernels::RopePairing::Adjacent : kernels::RopePairing::Half;
    spec.vocab = config.vocab_size;
    spec.attention_scale = static_cast<float>(config.attention_scale());

    spec.rope.push_back({rope_frequencies(config, source), rope_attention_factor(config)});
    const auto slides = [&](std::int64_t l) {
        return config.layer_types[static_cast<std::size_t>(l)] == LayerAttention::Sliding;
    };
    bool any_sliding = false;
    for (std::int64_t l = 0; l < config.num_layers; ++l) any_sliding = any_sliding || slides(l);
    const bool local_rope = any_sliding && config.rope_local_theta != 0;
    if (local_rope) {
        ModelConfig local = config;
        local.rope_theta = config.rope_local_theta;
        local.rope_scaling = RopeScaling{};
        spec.rope.push_back({rope_frequencies(local, source), 1.0f});
    }
    spec.embedding_scale = config.scale_embeddings ? static_cast<float>(std::sqrt(static_cast<double>(config.hidden_size))) : 1.0f;
    spec.logit_softcap = static_cast<float>(config.final_logit_softcapping);

    for (std::int64_t l = 0; l < config.num_layers; ++l) {
        LayerSpec layer;
        layer.attention.qk_norm = config.qk_norm;
        layer.attention.bias = config.attention_bias;
        layer.attention.window = slides(l) ? config.sliding_window : 0;
        layer.attention.rope_table = slides(l) && local_rope ? 1 : 0;
        layer.attention.sinks = config.attention_sinks;
        if (config.moe_layer(l)) {
            layer.mlp.kind = MlpSpec::Kind::MixtureOfExperts;
            layer.mlp.moe = moe_mlp_spec(config);
        } else {
            layer.mlp.activation = gate_activation(config.activation);
        }
        layer.norms = config.architecture == Architecture::Gemma3 ? NormPlacement::Sandwich : NormPlacement::Pre;
        spec.layers.push_back(layer);
    }
    return spec;
}

void embed_tokens(const ModelSpec& spec, const kernels::Matrix& embedding, const std::int32_t* tokens,
                  std::int64_t count, float* x) {
    kernels::embedding_forward(x, tokens, count, embedding);
    if (spec.embedding_scale == 1.0f) return;
    const std::int64_t n = count * spec.shape.hidden;
    for (std::int64_t i = 0; i < n; ++i) x[i] *= spec.embedding_scale;
}

void fill_rope_rows(const ModelSpec& spec, std::span<const RopeRows> rows, std::int64_t first_position,
                    const std::int32_t* positions, std::int64_t count) {
    const std::int64_t head_dim = spec.shape.head_dim, half = head_dim / 2;
    for (std::size_t i = 0; i < spec.rope.size(); ++i) {
        const RopeTable& table = spec.rope[i];
        const float* inv = table.inverse_frequencies.data();
        const RopeRows& row = rows[i];
        if (positions == nullptr) {
            kernels::rope_table(row.cos, row.sin, inv, head_dim, first_position, count, table.attention_factor);
            continue;
        }
        for (std::int64_t t = 0; t < count; ++t)
            kernels::rope_table(row.cos + t * half, row.sin + t * half, inv, head_dim, positions[t], 1,
                                table.attention_factor);
    }
}

void soft_cap_logits(const ModelSpec& spec, float* logits, std::int64_t n) {
    if (spec.logit_softcap == 0.0f) return;
    const float cap = spec.logit_softcap;
    for (std::int64_t i = 0; i < n; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
}

}  // namespace kindred::model
