// model/trainable_decoder.cpp — buffer planning, the training forward and its backward (see
// trainable_decoder.h). Backward passes of the kernels ADD into their outputs, so every gradient
// buffer that is not the running residual gradient is zeroed right before it is accumulated.
#include "model/trainable_decoder.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/activations.h"
#include "kernels/lora.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace kindred::model {
namespace {

void zero(float* p, std::int64_t n) { std::fill(p, p + n, 0.0f); }

}  // namespace

TrainableDecoder::TrainableDecoder(const Decoder& base, LoraAdapters& adapters, bool checkpoint_activations,
                                   std::int64_t max_tokens, kernels::Precision precision)
    : base_(base), adapters_(adapters), checkpoint_(checkpoint_activations), max_tokens_(max_tokens),
      precision_(precision) {
    const ModelConfig& c = base.config();
    if (max_tokens_ < 1) fail("trainable decoder: max_tokens must be positive, got {}", max_tokens_);
    if (!adapters.trainable()) fail("trainable decoder: the adapters were made for inference (no gradients)");
    if (adapters.layers() != c.num_layers)
        fail("trainable decoder: adapters have {} layers, the model {}", adapters.layers(), c.num_layers);
    hidden_ = c.hidden_size;
    heads_ = c.num_heads;
    kv_heads_ = c.num_kv_heads;
    head_dim_ = c.head_dim;
    q_dim_ = heads_ * head_dim_;
    kv_dim_ = kv_heads_ * head_dim_;
    ff_ = c.intermediate_size;
    rank_ = adapters.config().rank;
    max_in_ = std::max({hidden_, q_dim_, ff_});
    first_ = adapters.first_layer();
    if (adapters.in_features(LoraModule::Q) != hidden_ || adapters.out_features(LoraModule::Q) != q_dim_ ||
        adapters.out_features(LoraModule::K) != kv_dim_ || adapters.in_features(LoraModule::Down) != ff_)
        fail("trainable decoder: the adapters were built for another model shape");
    eps_ = static_cast<float>(c.rms_norm_eps);
    output_rows_ = kernels::weight_rows(base.output());
    output_rows_.precision = precision_;

    attention_.past = 0;
    attention_.heads = heads_;
    attention_.kv_heads = kv_heads_;
    attention_.head_dim = head_dim_;
    attention_.kv_head_stride = head_dim_;
    attention_.kv_position_stride = kv_dim_;
    attention_.scale = base.attention_scale();

    segment_ids_.resize(static_cast<std::size_t>(max_tokens_));
    layer_acts_.resize(checkpoint_ ? 1 : static_cast<std::size_t>(std::max<std::int64_t>(c.num_layers - first_, 1)));
    std::int64_t byte_count = 0;
    const std::int64_t float_count = plan(nullptr, nullptr, byte_count);
    arena_.reset(new float[static_cast<std::size_t>(float_count)]);
    masks_.reset(new std::uint8_t[static_cast<std::size_t>(std::max<std::int64_t>(byte_count, 1))]);
    plan(arena_.get(), masks_.get(), byte_count);
}

// Carves every buffer out of `floats` / `bytes` (null: only counts) and returns the float count.
std::int64_t TrainableDecoder::plan(float* floats, std::uint8_t* bytes, std::int64_t& byte_count) {
    std::int64_t used = 0;
    byte_count = 0;
    auto take_floats = [&](std::int64_t n) {
        float* view = floats == nullptr ? nullptr : floats + used;
        used += n;
        return view;
    };
    auto take = [&](std::int64_t per_token) { return take_floats(per_token * max_tokens_); };
    kernels::AttentionShape longest = attention_;
    longest.tokens = max_tokens_;
    const std::int64_t probability_floats = kernels::attention_probability_floats(longest);
    const bool dropout = adapters_.config().dropout > 0;
    const bool qk_norm = base_.config().qk_norm;
    for (LayerActs& s : layer_acts_) {
        s.rstd1 = take(1);
        s.n1 = take(hidden_);
        s.q = take(q_dim_);
        s.k = take(kv_dim_);
        s.v = take(kv_dim_);
        s.q_pre = qk_norm ? take(q_dim_) : nullptr;
        s.k_pre = qk_norm ? take(kv_dim_) : nullptr;
        s.rstd_q = qk_norm ? take(heads_) : nullptr;
        s.rstd_k = qk_norm ? take(kv_heads_) : nullptr;
        s.att = take(q_dim_);
        s.probabilities = take_floats(probability_floats);
        s.x_mid = take(hidden_);
        s.rstd2 = take(1);
        s.n2 = take(hidden_);
        s.gate = take(ff_);
        s.up = take(ff_);
        s.h = take(ff_);
        for (int m = 0; m < lora_module_count; ++m) {
            const auto module = static_cast<LoraModule>(m);
            const bool on = adapters_.targets(module);
            s.xa[m] = on ? take(rank_) : nullptr;
            s.u[m] = on && dropout ? take(adapters_.in_features(module)) : nullptr;
            s.keep[m] = nullptr;
            if (on && dropout) {
                s.keep[m] = bytes == nullptr ? nullptr : bytes + byte_count;
                byte_count += adapters_.in_features(module) * max_tokens_;
            }
        }
    }
    xs_ = take(hidden_ * (base_.config().num_layers + 1));
    cos_ = take(head_dim_ / 2);
    sin_ = take(head_dim_ / 2);
    final_normed_ = take(hidden_);
    final_rstd_ = take(1);
    dfinal_ = take(hidden_);
    tmp_ = take(hidden_);
    dx_ = take(hidden_);
    dn_ = take(hidden_);
    datt_ = take(q_dim_);
    dq_ = take(q_dim_);
    dk_ = take(kv_dim_);
    dv_ = take(kv_dim_);
    dq_pre_ = qk_norm ? take(q_dim_) : nullptr;
    dk_pre_ = qk_norm ? take(kv_dim_) : nullptr;
    dgate_ = take(ff_);
    dup_ = take(ff_);
    dh_ = take(ff_);
    du_ = dropout ? take(max_in_) : nullptr;
    return used;
}

void TrainableDecoder::check(const TrainBatch& batch) const {
    const std::size_t n = batch.tokens.size();
    if (n == 0) fail("trainable decoder: empty batch");
    if (static_cast<std::int64_t>(n) > max_tokens_)
        fail("trainable decoder: batch of {} tokens exceeds max_tokens {}", n, max_tokens_);
    if (!batch.residual.empty() && batch.residual.size() != n * static_cast<std::size_t>(hidden_))
        fail("trainable decoder: {} residual values for {} tokens x {} hidden", batch.residual.size(), n, hidden_);
    if (batch.targets.size() != n) fail("trainable decoder: {} targets for {} tokens", batch.targets.size(), n);
    if (!batch.positions.empty() && batch.positions.size() != n)
        fail("trainable decoder: {} positions for {} tokens", batch.positions.size(), n);
    if (!batch.segment_ids.empty() && batch.segment_ids.size() != n)
        fail("trainable decoder: {} segment ids for {} tokens", batch.segment_ids.size(), n);
    const ModelConfig& c = base_.config();
    for (std::size_t i = 0; i < n; ++i) {
        if (batch.tokens[i] < 0 || batch.tokens[i] >= c.vocab_size)
            fail("trainable decoder: token id {} at index {} is outside the vocabulary of {}", batch.tokens[i], i,
                 c.vocab_size);
        if (batch.targets[i] != kernels::ignore_index && (batch.targets[i] < 0 || batch.targets[i] >= c.vocab_size))
            fail("trainable decoder: target {} at index {} is outside the vocabulary of {}", batch.targets[i], i,
                 c.vocab_size);
        const std::int64_t position = batch.positions.empty() ? static_cast<std::int64_t>(i) : batch.positions[i];
        if (position < 0 || position >= c.context_length)
            fail("trainable decoder: position {} at index {} is outside the context of {}", position, i,
                 c.context_length);
        if (!batch.segment_ids.empty() && i > 0 && batch.segment_ids[i] < batch.segment_ids[i - 1])
            fail("trainable decoder: segment ids decrease at index {}", i);
    }
}

void TrainableDecoder::embed(const TrainBatch& batch) {
    tokens_ = static_cast<std::int64_t>(batch.tokens.size());
    if (batch.residual.empty())
        kernels::embedding_forward(xs_, batch.tokens.data(), tokens_, base_.embedding());
    else
        std::copy(batch.residual.begin(), batch.residual.end(), xs_ + first_ * tokens_ * hidden_);
    const std::int64_t half = head_dim_ / 2;
    for (std::int64_t t = 0; t < tokens_; ++t) {
        const std::int64_t position = batch.positions.empty() ? t : batch.positions[static_cast<std::size_t>(t)];
        kernels::rope_table(cos_ + t * half, sin_ + t * half, base_.inverse_frequencies().data(), head_dim_, position, 1,
                            base_.rope_attention_factor());
    }
    attention_.tokens = tokens_;
    // Copied, so that backward() does not depend on the caller keeping the batch alive.
    std::copy(batch.segment_ids.begin(), batch.segment_ids.end(), segment_ids_.begin());
    attention_.segment_ids = batch.segment_ids.empty() ? nullptr : segment_ids_.data();
}

void TrainableDecoder::begin(const TrainBatch& batch, bool train) {
    check(batch);
    dropout_on_ = train && adapters_.config().dropout > 0;
    if (train) {
        dropout_seed_ = adapters_.config().seed + (step_ + 1) * 0x632BE59BD9B4E019ull;
        ++step_;
    }
    forward_ready_ = false;
}

kernels::CrossEntropyTotals TrainableDecoder::forward_backward(const TrainBatch& batch, float loss_scale) {
    begin(batch, true);
    forward_pass(batch, base_.config().num_layers);
    zero(dfinal_, tokens_ * hidden_);
    const auto totals = cross_entropy(batch, dfinal_, loss_scale);
    backward_pass(dfinal_);
    return totals;
}

kernels::CrossEntropyTotals TrainableDecoder::loss_only(const TrainBatch& batch) {
    begin(batch, false);
    forward_pass(batch, base_.config().num_layers);
    return cross_entropy(batch, nullptr, 0.0f);
}

std::span<const float> TrainableDecoder::forward(const TrainBatch& batch, bool train) {
    begin(batch, train);
    forward_pass(batch, base_.config().num_layers);
    forward_ready_ = train;
    return {final_normed_, static_cast<std::size_t>(tokens_ * hidden_)};
}

std::span<const float> TrainableDecoder::residual_entering(const TrainBatch& batch, std::int64_t layer) {
    if (layer < 0 || layer > first_)
        fail("trainable decoder: residual_entering layer {} must be in [0, {}] (the adapters start at layer {})", layer,
             first_, first_);
    if (!batch.residual.empty()) fail("trainable decoder: residual_entering needs a batch of tokens, not of residuals");
    begin(batch, false);
    forward_pass(batch, layer);
    return {xs_ + layer * tokens_ * hidden_, static_cast<std::size_t>(tokens_ * hidden_)};
}

std::span<const float> TrainableDecoder::input_gradient() const {
    if (first_ > 0)
        fail("trainable decoder: no input gradient: the backward stops at layer {}, the adapters' first", first_);
    return {dx_, static_cast<std::size_t>(last_tokens_ * hidden_)};
}

void TrainableDecoder::backward(std::span<const float> dhidden) {
    if (!forward_ready_) fail("trainable decoder: backward without a preceding forward");
    if (static_cast<std::int64_t>(dhidden.size()) != tokens_ * hidden_)
        fail("trainable decoder: backward got {} gradient values, expected {} tokens x {}", dhidden.size(), tokens_,
             hidden_);
    forward_ready_ = false;
    backward_pass(dhidden.data());
}

void TrainableDecoder::forward_pass(const TrainBatch& batch, std::int64_t last_layer) {
    embed(batch);
    const std::int64_t T = tokens_, H = hidden_, layers = base_.config().num_layers;
    for (std::int64_t l = batch.residual.empty() ? 0 : first_; l < last_layer; ++l)
        layer_forward(l, acts(l), xs_ + l * T * H, xs_ + (l + 1) * T * H);
    if (last_layer == layers)
        kernels::rmsnorm_forward(final_normed_, final_rstd_, xs_ + layers * T * H, base_.output_norm(), T, H, eps_, false);
}

kernels::CrossEntropyTotals TrainableDecoder::cross_entropy(const TrainBatch& batch, float* dhidden, float loss_scale) {
    kernels::FusedCrossEntropyShape shape;
    shape.tokens = tokens_;
    shape.dim = hidden_;
    shape.vocab = base_.config().vocab_size;
    return kernels::fused_cross_entropy(dhidden, nullptr, final_normed_, output_rows_, batch.targets.data(), nullptr,
                                        shape, loss_scale);
}

void TrainableDecoder::backward_pass(const float* dhidden) {
    const std::int64_t T = tokens_, H = hidden_, layers = base_.config().num_layers;
    zero(dx_, T * H);
    kernels::rmsnorm_backward(dx_, nullptr, dhidden, xs_ + layers * T * H, final_rstd_, base_.output_norm(), T, H, false);
    for (std::int64_t l = layers - 1; l >= first_; --l) {
        if (checkpoint_) layer_forward(l, acts(l), xs_ + l * T * H, nullptr);
        layer_backward(l, acts(l), xs_ + l * T * H);
    }
    last_tokens_ = T;
}

void TrainableDecoder::linear_forward(float* y, const float* x, const kernels::Matrix& w, const float* bias,
                                      std::int64_t l, LoraModule m, LayerActs& s, bool base) {
    if (base) kernels::matmul_forward(y, x, w, bias, tokens_, precision_);
    if (!adapters_.adapts(l, m)) return;
    const int mi = static_cast<int>(m);
    const std::int64_t in = adapters_.in_features(m);
    const float* u = x;
    if (dropout_on_) {
        const auto offset = static_cast<std::uint64_t>((l * lora_module_count + mi) * max_tokens_ * max_in_);
        kernels::dropout_forward(s.u[mi], s.keep[mi], x, tokens_ * in, static_cast<float>(adapters_.config().dropout),
                                 dropout_seed_, offset);
        u = s.u[mi];
    }
    const kernels::LoraShape shape{tokens_, in, adapters_.out_features(m), rank_, adapters_.scale()};
    kernels::lora_forward(y, s.xa[mi], u, adapters_.a(l, m), adapters_.b(l, m), shape);
}

void TrainableDecoder::linear_backward(float* dx, const float* dy, const float* x, const kernels::Matrix& w,
                                       std::int64_t l, LoraModule m, const LayerActs& s) {
    kernels::matmul_backward_input(dx, dy, w, tokens_, precision_);
    if (!adapters_.adapts(l, m)) return;
    const int mi = static_cast<int>(m);
    const std::int64_t in = adapters_.in_features(m);
    const kernels::LoraShape shape{tokens_, in, adapters_.out_features(m), rank_, adapters_.scale()};
    if (dropout_on_) {
        zero(du_, tokens_ * in);
        kernels::lora_backward(du_, adapters_.grad_a(l, m), adapters_.grad_b(l, m), dy, s.u[mi], s.xa[mi],
                               adapters_.a(l, m), adapters_.b(l, m), shape);
        kernels::dropout_backward(dx, du_, s.keep[mi], tokens_ * in, static_cast<float>(adapters_.config().dropout));
    } else {
        kernels::lora_backward(dx, adapters_.grad_a(l, m), adapters_.grad_b(l, m), dy, x, s.xa[mi], adapters_.a(l, m),
                               adapters_.b(l, m), shape);
    }
}

void TrainableDecoder::layer_forward(std::int64_t l, LayerActs& s, const float* x_in, float* x_out) {
    const Decoder::Layer& w = base_.layers()[static_cast<std::size_t>(l)];
    const std::int64_t T = tokens_, H = hidden_;
    const auto pairing = base_.rope_pairing();
    kernels::rmsnorm_forward(s.n1, s.rstd1, x_in, w.attn_norm, T, H, eps_, false);
    const bool qk_norm = w.q_norm != nullptr;
    linear_forward(qk_norm ? s.q_pre : s.q, s.n1, w.q, w.q_bias, l, LoraModule::Q, s);
    linear_forward(qk_norm ? s.k_pre : s.k, s.n1, w.k, w.k_bias, l, LoraModule::K, s);
    linear_forward(s.v, s.n1, w.v, w.v_bias, l, LoraModule::V, s);
    if (qk_norm) {
        kernels::rmsnorm_forward(s.q, s.rstd_q, s.q_pre, w.q_norm, T * heads_, head_dim_, eps_, false);
        kernels::rmsnorm_forward(s.k, s.rstd_k, s.k_pre, w.k_norm, T * kv_heads_, head_dim_, eps_, false);
    }
    kernels::rope_forward(s.q, cos_, sin_, T, heads_, head_dim_, head_dim_, pairing);
    kernels::rope_forward(s.k, cos_, sin_, T, kv_heads_, head_dim_, head_dim_, pairing);
    kernels::attention_forward_saving(s.att, s.probabilities, s.q, s.k, s.v, attention_);
    linear_forward(tmp_, s.att, w.o, w.o_bias, l, LoraModule::O, s);
    std::memcpy(s.x_mid, x_in, static_cast<std::size_t>(T * H) * sizeof(float));
    kernels::residual_forward(s.x_mid, tmp_, T * H);

    kernels::rmsnorm_forward(s.n2, s.rstd2, s.x_mid, w.ffn_norm, T, H, eps_, false);
    linear_forward(s.gate, s.n2, w.gate, nullptr, l, LoraModule::Gate, s);
    linear_forward(s.up, s.n2, w.up, nullptr, l, LoraModule::Up, s);
    kernels::gated_activation_forward(s.h, s.gate, s.up, T * ff_, kernels::GateActivation::Silu);
    // A recomputation (x_out null) needs only what backward reads: the down adapter's product,
    // not the frozen down projection (a quarter of the layer's FLOPs) nor the layer's output.
    linear_forward(tmp_, s.h, w.down, nullptr, l, LoraModule::Down, s, x_out != nullptr);
    if (x_out == nullptr) return;
    std::memcpy(x_out, s.x_mid, static_cast<std::size_t>(T * H) * sizeof(float));
    kernels::residual_forward(x_out, tmp_, T * H);
}

// On entry dx_ holds d/d(layer output); on exit d/d(layer input). The residual adds pass dx_
// through unchanged, so the norms' backward passes add their branch into it.
void TrainableDecoder::layer_backward(std::int64_t l, LayerActs& s, const float* x_in) {
    const Decoder::Layer& w = base_.layers()[static_cast<std::size_t>(l)];
    const std::int64_t T = tokens_, H = hidden_;
    const auto pairing = base_.rope_pairing();
    // MLP block.
    zero(dh_, T * ff_);
    linear_backward(dh_, dx_, s.h, w.down, l, LoraModule::Down, s);
    zero(dgate_, T * ff_);
    zero(dup_, T * ff_);
    kernels::gated_activation_backward(dgate_, dup_, dh_, s.gate, s.up, T * ff_, kernels::GateActivation::Silu);
    zero(dn_, T * H);
    linear_backward(dn_, dgate_, s.n2, w.gate, l, LoraModule::Gate, s);
    linear_backward(dn_, dup_, s.n2, w.up, l, LoraModule::Up, s);
    kernels::rmsnorm_backward(dx_, nullptr, dn_, s.x_mid, s.rstd2, w.ffn_norm, T, H, false);
    // Attention block.
    zero(datt_, T * q_dim_);
    linear_backward(datt_, dx_, s.att, w.o, l, LoraModule::O, s);
    zero(dq_, T * q_dim_);
    zero(dk_, T * kv_dim_);
    zero(dv_, T * kv_dim_);
    kernels::attention_backward_saved(dq_, dk_, dv_, datt_, s.probabilities, s.q, s.k, s.v, attention_);
    kernels::rope_backward(dq_, cos_, sin_, T, heads_, head_dim_, head_dim_, pairing);
    kernels::rope_backward(dk_, cos_, sin_, T, kv_heads_, head_dim_, head_dim_, pairing);
    const float* dq = dq_;
    const float* dk = dk_;
    if (w.q_norm != nullptr) {
        zero(dq_pre_, T * q_dim_);
        zero(dk_pre_, T * kv_dim_);
        kernels::rmsnorm_backward(dq_pre_, nullptr, dq_, s.q_pre, s.rstd_q, w.q_norm, T * heads_, head_dim_, false);
        kernels::rmsnorm_backward(dk_pre_, nullptr, dk_, s.k_pre, s.rstd_k, w.k_norm, T * kv_heads_, head_dim_, false);
        dq = dq_pre_;
        dk = dk_pre_;
    }
    zero(dn_, T * H);
    linear_backward(dn_, dq, s.n1, w.q, l, LoraModule::Q, s);
    linear_backward(dn_, dk, s.n1, w.k, l, LoraModule::K, s);
    linear_backward(dn_, dv_, s.n1, w.v, l, LoraModule::V, s);
    kernels::rmsnorm_backward(dx_, nullptr, dn_, x_in, s.rstd1, w.attn_norm, T, H, false);
}

}  // namespace kindred::model
