// model/decoder.cpp — binding tensors to layers and the forward pass (see decoder.h).
#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/dequantize.h"
#include "kernels/lora.h"
#include "kernels/norm.h"
#include "model/rope_frequencies.h"

namespace kindred::model {
namespace {

void check_supported(const ModelConfig& config, const std::string& source) {
    if (config.architecture != Architecture::Llama && config.architecture != Architecture::Qwen3)
        fail("{}: architecture '{}' is not supported by the decoder yet", source, architecture_name(config.architecture));
    if (config.num_experts != 0) fail("{}: mixture-of-experts layers are not supported yet", source);
    if (config.attention_sinks) fail("{}: attention sinks are not supported yet", source);
    if (config.sliding_window != 0 &&
        std::any_of(config.layer_types.begin(), config.layer_types.end(),
                    [](LayerAttention a) { return a == LayerAttention::Sliding; }))
        fail("{}: sliding-window layers are not supported yet", source);
    if (config.norm_weight_offset || config.scale_embeddings || config.final_logit_softcapping != 0.0 ||
        config.activation != Activation::Silu || config.swiglu_limit != 0.0)
        fail("{}: Gemma/gpt-oss specific features are not supported yet", source);
}

}  // namespace

Decoder::Decoder(ModelConfig config, Weights weights, std::int64_t max_batch)
    : config_(std::move(config)), weights_(std::move(weights)), max_batch_(max_batch) {
    const std::string& source = weights_.source();
    config_.validate(source);
    check_supported(config_, source);
    if (max_batch_ < 1) fail("decoder: max_batch must be positive, got {}", max_batch_);
    const std::int64_t hidden = config_.hidden_size, head_dim = config_.head_dim;
    const std::int64_t q_dim = config_.num_heads * head_dim, kv_dim = config_.num_kv_heads * head_dim;
    const std::int64_t ff = config_.intermediate_size;

    embedding_ = bind_matrix("token_embd.weight", config_.vocab_size, hidden);
    // Tied models reuse the embedding rows as the output projection (a copy stored beside them,
    // as some HF checkpoints carry, is the same matrix and is not read).
    output_ = config_.tie_word_embeddings ? embedding_ : bind_matrix("output.weight", config_.vocab_size, hidden);
    output_norm_ = bind_vector("output_norm.weight", hidden);
    for (std::int64_t l = 0; l < config_.num_layers; ++l) {
        const std::string prefix = "blk." + std::to_string(l) + ".";
        Layer layer;
        layer.attn_norm = bind_vector(prefix + "attn_norm.weight", hidden);
        layer.ffn_norm = bind_vector(prefix + "ffn_norm.weight", hidden);
        layer.q = bind_matrix(prefix + "attn_q.weight", q_dim, hidden);
        layer.k = bind_matrix(prefix + "attn_k.weight", kv_dim, hidden);
        layer.v = bind_matrix(prefix + "attn_v.weight", kv_dim, hidden);
        layer.o = bind_matrix(prefix + "attn_output.weight", hidden, q_dim);
        layer.gate = bind_matrix(prefix + "ffn_gate.weight", ff, hidden);
        layer.up = bind_matrix(prefix + "ffn_up.weight", ff, hidden);
        layer.down = bind_matrix(prefix + "ffn_down.weight", hidden, ff);
        if (config_.qk_norm) {
            layer.q_norm = bind_vector(prefix + "attn_q_norm.weight", head_dim);
            layer.k_norm = bind_vector(prefix + "attn_k_norm.weight", head_dim);
        }
        if (config_.attention_bias) {
            layer.q_bias = bind_vector(prefix + "attn_q.bias", q_dim);
            layer.k_bias = bind_vector(prefix + "attn_k.bias", kv_dim);
            layer.v_bias = bind_vector(prefix + "attn_v.bias", kv_dim);
            layer.o_bias = bind_vector(prefix + "attn_output.bias", hidden);
        }
        layers_.push_back(layer);
    }

    inv_freq_ = rope_frequencies(config_, source);
    // GGUF files of Llama 3.1 and later carry their rope scaling as per-frequency divisors
    // (ggml's freq_factors) instead of metadata.
    if (weights_.find("rope_freqs.weight") != nullptr) {
        if (config_.rope_scaling.type != RopeScalingType::None)
            fail("{}: rope_freqs.weight and a rope scaling config both scale the rotary frequencies", source);
        const float* divisors = bind_vector("rope_freqs.weight", head_dim / 2);
        for (std::size_t i = 0; i < inv_freq_.size(); ++i) inv_freq_[i] /= divisors[i];
    }
    rope_pairing_ = weights_.qk_interleaved ? kernels::RopePairing::Adjacent : kernels::RopePairing::Half;
    attention_scale_ = static_cast<float>(config_.query_pre_attn_scalar > 0 ? 1.0 / std::sqrt(config_.query_pre_attn_scalar)
                                                                           : 1.0 / std::sqrt(static_cast<double>(head_dim)));

    // One arena for every activation; pages are touched only as far as the batches reach.
    const std::int64_t per_token = 2 * hidden + 2 * q_dim + 2 * kv_dim + 2 * ff + head_dim;
    arena_.reset(new float[static_cast<std::size_t>(per_token * max_batch_)]);
    float* next = arena_.get();
    auto take = [&](std::int64_t floats_per_token) {
        float* view = next;
        next += floats_per_token * max_batch_;
        return view;
    };
    act_.x = take(hidden);
    act_.normed = take(hidden);
    act_.q = take(q_dim);
    act_.k = take(kv_dim);
    act_.v = take(kv_dim);
    act_.attended = take(q_dim);
    act_.gate = take(ff);
    act_.up = take(ff);
    act_.cos = take(head_dim / 2);
    act_.sin = take(head_dim / 2);
}

kernels::Matrix Decoder::bind_matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    const WeightView& view = weights_.get(name);
    if (view.shape != std::vector<std::int64_t>{rows, cols})
        fail("{}: tensor '{}' has shape [{}], expected [{}, {}]", weights_.source(), name, fmt::join(view.shape, ", "),
             rows, cols);
    const auto& info = dtype_info(view.type);
    if (!info.dequantizable) fail("{}: tensor '{}' has type {}, which the kernels cannot read", weights_.source(), name, info.name);
    return {view.type, rows, cols, view.data};
}

const float* Decoder::bind_vector(const std::string& name, std::int64_t size) {
    const WeightView& view = weights_.get(name);
    if (view.shape != std::vector<std::int64_t>{size})
        fail("{}: tensor '{}' has shape [{}], expected [{}]", weights_.source(), name, fmt::join(view.shape, ", "), size);
    if (!dtype_info(view.type).dequantizable)
        fail("{}: tensor '{}' has type {}, which the kernels cannot read", weights_.source(), name, dtype_name(view.type));
    // Copied to fp32 (small): norms and biases may be stored as F16/BF16 or at unaligned offsets.
    auto& owned = owned_vectors_.emplace_back(static_cast<std::size_t>(size));
    dequantize_row(view.type, view.data, owned.data(), size);
    return owned.data();
}

Decoder Decoder::from_gguf(const gguf::File& file) {
    return Decoder(model_config_from_gguf(file), load_weights(file));
}

Decoder Decoder::from_checkpoint(const safetensors::Checkpoint& checkpoint, const ModelConfig& config) {
    return Decoder(config, load_weights(checkpoint));
}

void Decoder::attach_adapter(const LoraAdapters* adapters) {
    if (adapters != nullptr) {
        if (adapters->layers() != config_.num_layers)
            fail("{}: the adapter has {} layers, the model {}", weights_.source(), adapters->layers(), config_.num_layers);
        // Every layer has the same shapes, so layer 0's bound matrices stand for all.
        const Layer& first = layers_.front();
        const kernels::Matrix* matrices[lora_module_count] = {&first.q, &first.k, &first.v, &first.o,
                                                              &first.gate, &first.up, &first.down};
        const char* names[lora_module_count] = {"q", "k", "v", "o", "gate", "up", "down"};
        for (int m = 0; m < lora_module_count; ++m) {
            const auto module = static_cast<LoraModule>(m);
            const kernels::Matrix& w = *matrices[m];
            if (adapters->targets(module) && (adapters->in_features(module) != w.cols || adapters->out_features(module) != w.rows))
                fail("{}: the adapter's module {} maps {} -> {} features, the model's {} -> {}", weights_.source(), names[m],
                     adapters->in_features(module), adapters->out_features(module), w.cols, w.rows);
        }
        adapter_xa_.assign(static_cast<std::size_t>(max_batch_ * adapters->config().rank), 0.0f);
    } else {
        adapter_xa_ = {};
    }
    adapter_ = adapters;
}

void Decoder::linear(float* y, const float* x, const kernels::Matrix& w, const float* bias, std::int64_t tokens,
                     std::int64_t layer, LoraModule module) {
    kernels::matmul_forward(y, x, w, bias, tokens);
    if (adapter_ == nullptr || !adapter_->adapts(layer, module)) return;
    kernels::LoraShape shape;
    shape.tokens = tokens;
    shape.in = w.cols;
    shape.out = w.rows;
    shape.rank = adapter_->config().rank;
    shape.scale = adapter_->scale();
    kernels::lora_forward(y, adapter_xa_.data(), x, adapter_->a(layer, module), adapter_->b(layer, module), shape);
}

void Decoder::forward(std::span<const std::int32_t> tokens, KvCache& cache, std::span<float> logits, bool all_logits) {
    const auto count = static_cast<std::int64_t>(tokens.size());
    const std::int64_t vocab = config_.vocab_size;
    if (count == 0) fail("decoder: forward needs at least one token");
    if (!cache.fits(config_)) fail("decoder: the KV cache was shaped for another model");
    const auto expected = static_cast<std::size_t>(all_logits ? count * vocab : vocab);
    if (logits.size() != expected) fail("decoder: logits span holds {} floats, expected {}", logits.size(), expected);
    if (cache.size() + count > cache.capacity())
        fail("decoder: {} tokens after {} cached exceed the KV cache capacity of {}", count, cache.size(), cache.capacity());
    if (cache.size() + count > config_.context_length)
        fail("decoder: {} tokens after {} cached exceed the context length of {}", count, cache.size(), config_.context_length);
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            fail("decoder: token id {} at index {} is outside the vocabulary of {}", tokens[i], i, vocab);

    for (std::int64_t begin = 0; begin < count; begin += max_batch_) {
        const std::int64_t n = std::min(max_batch_, count - begin);
        const bool last_chunk = begin + n == count;
        float* out = all_logits ? logits.data() + begin * vocab : (last_chunk ? logits.data() : nullptr);
        forward_chunk(tokens.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(n)), cache, out, all_logits);
    }
}

void Decoder::forward_chunk(std::span<const std::int32_t> tokens, KvCache& cache, float* logits, bool all_logits) {
    const auto T = static_cast<std::int64_t>(tokens.size());
    const std::int64_t past = cache.size();
    const std::int64_t hidden = config_.hidden_size, head_dim = config_.head_dim;
    const std::int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads;
    const std::int64_t kv_dim = kv_heads * head_dim, ff = config_.intermediate_size;
    const auto eps = static_cast<float>(config_.rms_norm_eps);
    const Activations& a = act_;

    kernels::embedding_forward(a.x, tokens.data(), T, embedding_);
    kernels::rope_table(a.cos, a.sin, inv_freq_.data(), head_dim, past, T, rope_attention_factor_);

    kernels::AttentionShape shape;
    shape.tokens = T;
    shape.past = past;
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.kv_head_stride = cache.head_stride();
    shape.scale = attention_scale_;

    for (std::size_t l = 0; l < layers_.size(); ++l) {
        const Layer& layer = layers_[l];
        const auto layer_index = static_cast<std::int64_t>(l);
        // Attention block.
        kernels::rmsnorm_forward(a.normed, nullptr, a.x, layer.attn_norm, T, hidden, eps, false);
        linear(a.q, a.normed, layer.q, layer.q_bias, T, layer_index, LoraModule::Q);
        linear(a.k, a.normed, layer.k, layer.k_bias, T, layer_index, LoraModule::K);
        linear(a.v, a.normed, layer.v, layer.v_bias, T, layer_index, LoraModule::V);
        if (layer.q_norm != nullptr) {
            kernels::rmsnorm_forward(a.q, nullptr, a.q, layer.q_norm, T * heads, head_dim, eps, false);
            kernels::rmsnorm_forward(a.k, nullptr, a.k, layer.k_norm, T * kv_heads, head_dim, eps, false);
        }
        kernels::rope_forward(a.q, a.cos, a.sin, T, heads, head_dim, head_dim, rope_pairing_);
        kernels::rope_forward(a.k, a.cos, a.sin, T, kv_heads, head_dim, head_dim, rope_pairing_);
        float* keys = cache.keys(layer_index);
        float* values = cache.values(layer_index);
        const auto row_bytes = static_cast<std::size_t>(head_dim) * sizeof(float);
        for (std::int64_t t = 0; t < T; ++t)
            for (std::int64_t g = 0; g < kv_heads; ++g) {
                const std::int64_t at = g * shape.kv_head_stride + (past + t) * head_dim;
                std::memcpy(keys + at, a.k + t * kv_dim + g * head_dim, row_bytes);
                std::memcpy(values + at, a.v + t * kv_dim + g * head_dim, row_bytes);
            }
        kernels::attention_forward(a.attended, a.q, keys, values, shape);
        linear(a.normed, a.attended, layer.o, layer.o_bias, T, layer_index, LoraModule::O);
        kernels::residual_forward(a.x, a.normed, T * hidden);
        // MLP block.
        kernels::rmsnorm_forward(a.normed, nullptr, a.x, layer.ffn_norm, T, hidden, eps, false);
        linear(a.gate, a.normed, layer.gate, nullptr, T, layer_index, LoraModule::Gate);
        linear(a.up, a.normed, layer.up, nullptr, T, layer_index, LoraModule::Up);
        kernels::gated_activation_forward(a.gate, a.gate, a.up, T * ff, kernels::GateActivation::Silu);
        linear(a.normed, a.gate, layer.down, nullptr, T, layer_index, LoraModule::Down);
        kernels::residual_forward(a.x, a.normed, T * hidden);
    }
    cache.advance(T);

    if (logits == nullptr) return;
    // Only the rows whose logits are wanted go through the final norm and the vocabulary product.
    const std::int64_t first = all_logits ? 0 : T - 1;
    const std::int64_t rows = T - first;
    kernels::rmsnorm_forward(a.normed, nullptr, a.x + first * hidden, output_norm_, rows, hidden, eps, false);
    kernels::matmul_forward(logits, a.normed, output_, nullptr, rows);
}

}  // namespace kindred::model
