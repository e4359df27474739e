// model/trainable_decoder.cpp — buffer planning, the training passes over the shared layer pieces
// (model/layer.h) and this class's side of them: adapters with dropout, attention keeping its
// probabilities (see trainable_decoder.h). Backward passes of the kernels ADD into their outputs,
// so every gradient buffer that is not the running residual gradient is zeroed right before it
// is accumulated.
#include "model/trainable_decoder.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include <unistd.h>

#include "core/error.h"
#include "kernels/lora.h"
#include "kernels/norm.h"

namespace kindred::model {
namespace {

void zero(float* p, std::int64_t n) { std::fill(p, p + n, 0.0f); }

bool any_layer(const ModelSpec& spec, bool (*predicate)(const LayerSpec&)) {
    return std::any_of(spec.layers.begin(), spec.layers.end(), predicate);
}

}  // namespace

TrainableDecoder::TrainableDecoder(const Decoder& base, LoraAdapters& adapters, bool checkpoint_activations,
                                   std::int64_t max_tokens, kernels::Precision precision)
    : base_(base), adapters_(adapters), checkpoint_(checkpoint_activations), max_tokens_(max_tokens),
      precision_(precision) {
    const ModelConfig& c = base.config();
    const LayerShape& shape = base.spec().shape;
    if (max_tokens_ < 1) fail("trainable decoder: max_tokens must be positive, got {}", max_tokens_);
    if (!adapters.trainable()) fail("trainable decoder: the adapters were made for inference (no gradients)");
    if (adapters.layers() != c.num_layers)
        fail("trainable decoder: adapters have {} layers, the model {}", adapters.layers(), c.num_layers);
    hidden_ = shape.hidden;
    rank_ = adapters.config().rank;
    first_ = adapters.first_layer();
    max_in_ = std::max({shape.hidden, shape.q_dim, shape.ff});
    check_adapter_fits(adapters, base.layers(), "trainable decoder");
    if (base.spec().logit_softcap != 0.0f)
        fail("trainable decoder: final logit soft-capping (final_logit_softcapping {}) is not supported in training yet",
             base.spec().logit_softcap);
    output_rows_ = kernels::weight_rows(base.output());
    output_rows_.precision = precision_;

    attention_.past = 0;
    attention_.heads = shape.heads;
    attention_.kv_heads = shape.kv_heads;
    attention_.head_dim = shape.head_dim;
    attention_.kv_head_stride = shape.head_dim;
    attention_.kv_position_stride = shape.kv_dim;
    attention_.scale = base.attention_scale();
    attention_.precision = precision_;

    segment_ids_.resize(static_cast<std::size_t>(max_tokens_));
    prefix_segment_ids_.resize(static_cast<std::size_t>(max_tokens_));
    layer_acts_.resize(checkpoint_ ? 1 : static_cast<std::size_t>(std::max<std::int64_t>(c.num_layers - first_, 1)));
    moe_acts_.resize(layer_acts_.size());
    for (std::size_t i = 0; i < layer_acts_.size(); ++i) layer_acts_[i].moe = &moe_acts_[i];
    rope_.resize(base.spec().rope.size());
    std::int64_t byte_count = 0;
    const std::int64_t float_count = plan(nullptr, nullptr, byte_count);
    arena_ = aligned_array<float>(float_count);
    masks_.reset(new std::uint8_t[static_cast<std::size_t>(std::max<std::int64_t>(byte_count, 1))]);
    plan(arena_.get(), masks_.get(), byte_count);
    pack_frozen_weights();
}

namespace {

// The most bytes of bf16 packings of the frozen weights a trainer holds: a quarter of the
// machine's memory, at most 4 GiB (SmolLM2-135M's take 0.54 GB, Qwen3-0.6B's 2.4 GB; a 20B
// model's would not fit, and its products pack as they go).
std::int64_t packing_budget() {
    const long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGE_SIZE);
    const std::int64_t quarter = pages > 0 && page_bytes > 0 ? std::int64_t{pages} * page_bytes / 4 : 0;
    return std::min<std::int64_t>(quarter, std::int64_t{4} << 30);
}

}  // namespace

// The dense projections' packings and views that carry them, [layer x linear module], and the
// output matrix's (read through output_rows_).
struct TrainableDecoder::FrozenPackings {
    std::vector<kernels::PackedBf16> layers;
    std::vector<kernels::Matrix> views;
    kernels::PackedBf16 output;
    std::int64_t bytes = 0;
};

// Packs the dense projections and the output matrix for BF16 products once (kernels::pack_bf16)
// when they run on AMX and the packings fit packing_budget(): each micro-batch then skips
// dequantizing and packing every frozen weight twice (the output matrix: in the loss's logits
// and gradient walks), for the same bits. A trainer made while another on the same base is alive
// takes that one's packings, so that two never hold two copies.
void TrainableDecoder::pack_frozen_weights() {
    if (kernels::effective_precision(precision_) != kernels::Precision::BF16) return;
    static std::mutex mutex;
    static std::map<const Decoder*, std::weak_ptr<const FrozenPackings>> alive;
    const std::lock_guard lock(mutex);
    std::weak_ptr<const FrozenPackings>& slot = alive[&base_];
    packings_ = slot.lock();
    if (packings_ == nullptr) {
        const auto& layers = base_.layers();
        // Each dense projection with its place, [layer x linear module].
        std::vector<std::pair<std::size_t, const kernels::Matrix*>> dense;
        for (std::size_t l = 0; l < layers.size(); ++l)
            for (int m = 0; m < linear_module_count; ++m)
                if (const kernels::Matrix* w = dense_weight(layers[l], static_cast<LoraModule>(m)))
                    dense.emplace_back(l * linear_module_count + static_cast<std::size_t>(m), w);
        const kernels::Matrix& output = base_.output();
        std::int64_t bytes = kernels::packed_bf16_bytes(output);
        for (const auto& [i, w] : dense) bytes += kernels::packed_bf16_bytes(*w);
        if (bytes > packing_budget()) return;
        auto made = std::make_shared<FrozenPackings>();
        made->layers.resize(layers.size() * linear_module_count);
        made->views.resize(made->layers.size());
        for (const auto& [i, w] : dense) {
            made->layers[i] = kernels::pack_bf16(*w);
            made->views[i] = *w;
            made->views[i].packed = &made->layers[i];
        }
        made->output = kernels::pack_bf16(output);
        made->bytes = bytes;
        packings_ = made;
        slot = packings_;
    }
    output_rows_.packed = &packings_->output;
}

std::int64_t TrainableDecoder::packed_weight_bytes() const { return packings_ != nullptr ? packings_->bytes : 0; }

const kernels::Matrix& TrainableDecoder::frozen(std::int64_t l, LoraModule m, const kernels::Matrix& w) const {
    if (packings_ == nullptr || static_cast<int>(m) >= linear_module_count) return w;
    const kernels::Matrix& view =
        packings_->views[static_cast<std::size_t>(l * linear_module_count + static_cast<int>(m))];
    return view.data == w.data ? view : w;
}

// Carves every buffer out of `floats` / `bytes` (null: only counts) and returns the float count.
// A shared (checkpointing) set of layer buffers serves every layer, so it has what any layer keeps.
std::int64_t TrainableDecoder::plan(float* floats, std::uint8_t* bytes, std::int64_t& byte_count) {
    const ModelSpec& spec = base_.spec();
    const LayerShape& shape = spec.shape;
    const std::int64_t hidden = shape.hidden, q_dim = shape.q_dim, kv_dim = shape.kv_dim, ff = shape.ff;
    std::int64_t used = 0;
    byte_count = 0;
    // Every buffer starts on a cache line (the arena does): the products' AMX tiles read and
    // write 64-byte rows.
    constexpr std::int64_t line_floats = cache_line_bytes / sizeof(float);
    auto take_floats = [&](std::int64_t n) {
        float* view = floats == nullptr ? nullptr : floats + used;
        used += (n + line_floats - 1) / line_floats * line_floats;
        return view;
    };
    auto take = [&](std::int64_t per_token) { return take_floats(per_token * max_tokens_); };
    kernels::AttentionShape longest = attention_;
    longest.tokens = max_tokens_;
    const std::int64_t probability_floats = kernels::attention_probability_floats(longest);
    const bool dropout = adapters_.config().dropout > 0;
    const bool qk_norm = any_layer(spec, [](const LayerSpec& l) { return l.attention.qk_norm; });
    const bool sandwich = any_layer(spec, [](const LayerSpec& l) { return l.norms == NormPlacement::Sandwich; });
    for (LayerActs& s : layer_acts_) {
        s.rstd1 = take(1);
        s.n1 = take(hidden);
        s.q = take(q_dim);
        s.k = take(kv_dim);
        s.v = take(kv_dim);
        s.q_pre = qk_norm ? take(q_dim) : nullptr;
        s.k_pre = qk_norm ? take(kv_dim) : nullptr;
        s.rstd_q = qk_norm ? take(shape.heads) : nullptr;
        s.rstd_k = qk_norm ? take(shape.kv_heads) : nullptr;
        s.att = take(q_dim);
        s.probabilities = take_floats(probability_floats);
        s.x_mid = take(hidden);
        s.rstd2 = take(1);
        s.n2 = take(hidden);
        s.gate = take(ff);
        s.up = take(ff);
        s.h = take(ff);
        // The expert stacks' adapters keep their state in s.moe.
        for (int m = 0; m < linear_module_count; ++m) {
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
        // Post-norms differentiate through the projections' outputs, which must then be kept.
        s.attn_out = sandwich ? take(hidden) : nullptr;
        s.mlp_out = sandwich ? take(hidden) : nullptr;
        s.rstd_post1 = sandwich ? take(1) : nullptr;
        s.rstd_post2 = sandwich ? take(1) : nullptr;
    }
    xs_ = take(hidden * (static_cast<std::int64_t>(spec.layers.size()) + 1));
    for (RopeRows& rows : rope_) {
        rows.cos = take(shape.head_dim / 2);
        rows.sin = take(shape.head_dim / 2);
    }
    final_normed_ = take(hidden);
    final_rstd_ = take(1);
    dfinal_ = take(hidden);
    tmp_ = take(hidden);
    dx_ = take(hidden);
    // Backward's scratch, in the order backward first uses it.
    LayerGrads& g = grads_;
    g.dbranch = sandwich ? take(hidden) : nullptr;
    const std::pair<float**, std::int64_t> always[] = {{&g.dh, ff},      {&g.dgate, ff},  {&g.dup, ff},
                                                       {&g.dn, hidden},  {&g.datt, q_dim}, {&g.dv, kv_dim},
                                                       {&g.dq, q_dim},   {&g.dk, kv_dim}};
    for (const auto& [buffer, width] : always) *buffer = take(width);
    g.dq_pre = qk_norm ? take(q_dim) : nullptr;
    g.dk_pre = qk_norm ? take(kv_dim) : nullptr;
    du_ = dropout ? take(max_in_) : nullptr;
    // A projection's output that nothing differentiates through is consumed by the residual add
    // (or the post-norm) right away, so one scratch serves them all.
    for (LayerActs& s : layer_acts_) {
        if (!sandwich) s.attn_out = s.mlp_out = tmp_;
        s.branch = tmp_;
    }
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
    if (!batch.prefix_segment_ids.empty() && (batch.prefix_segment_ids.size() != n || batch.segment_ids.empty()))
        fail("trainable decoder: {} prefix segment ids for {} tokens and {} segment ids", batch.prefix_segment_ids.size(),
             n, batch.segment_ids.size());
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
        embed_tokens(base_.spec(), base_.embedding(), batch.tokens.data(), tokens_, xs_);
    else
        std::copy(batch.residual.begin(), batch.residual.end(), xs_ + first_ * tokens_ * hidden_);
    fill_rope_rows(base_.spec(), rope_, 0, batch.positions.empty() ? nullptr : batch.positions.data(), tokens_);
    attention_.tokens = tokens_;
    // Copied, so that backward() does not depend on the caller keeping the batch alive.
    std::copy(batch.segment_ids.begin(), batch.segment_ids.end(), segment_ids_.begin());
    attention_.segment_ids = batch.segment_ids.empty() ? nullptr : segment_ids_.data();
    std::copy(batch.prefix_segment_ids.begin(), batch.prefix_segment_ids.end(), prefix_segment_ids_.begin());
    attention_.prefix_segment_ids = batch.prefix_segment_ids.empty() ? nullptr : prefix_segment_ids_.data();
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

bool TrainableDecoder::shares_prefixes_exactly(bool train) const {
    const bool windows = any_layer(base_.spec(), [](const LayerSpec& l) { return l.attention.window > 0; });
    return !windows && !(train && adapters_.config().dropout > 0);
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
    const ModelSpec& spec = base_.spec();
    const std::int64_t T = tokens_, H = hidden_, layers = static_cast<std::int64_t>(spec.layers.size());
    for (std::int64_t l = batch.residual.empty() ? 0 : first_; l < last_layer; ++l)
        layer_forward(spec.shape, spec.layers[static_cast<std::size_t>(l)], base_.layers()[static_cast<std::size_t>(l)],
                      rope_, *this, l, T, acts(l), xs_ + l * T * H, xs_ + (l + 1) * T * H);
    if (last_layer < layers) return;
    kernels::rmsnorm_forward(final_normed_, final_rstd_, xs_ + layers * T * H, base_.output_norm(), T, H,
                             spec.shape.norm_eps, spec.shape.norm_weight_offset);
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
    const ModelSpec& spec = base_.spec();
    const std::int64_t T = tokens_, H = hidden_, layers = static_cast<std::int64_t>(spec.layers.size());
    zero(dx_, T * H);
    kernels::rmsnorm_backward(dx_, nullptr, dhidden, xs_ + layers * T * H, final_rstd_, base_.output_norm(), T, H,
                              spec.shape.norm_weight_offset);
    for (std::int64_t l = layers - 1; l >= first_; --l) {
        const LayerSpec& layer = spec.layers[static_cast<std::size_t>(l)];
        const Decoder::Layer& weights = base_.layers()[static_cast<std::size_t>(l)];
        const float* x_in = xs_ + l * T * H;
        if (checkpoint_) layer_forward(spec.shape, layer, weights, rope_, *this, l, T, acts(l), x_in, nullptr);
        layer_backward(spec.shape, layer, weights, rope_, *this, l, T, acts(l), grads_, x_in, dx_);
    }
    last_tokens_ = T;
}

void TrainableDecoder::linear(std::int64_t l, LoraModule m, LayerActs& s, float* y, const float* x,
                              const kernels::Matrix& w, const float* bias, bool base) {
    if (!adapters_.adapts(l, m)) {
        if (base) kernels::matmul_forward(y, x, frozen(l, m, w), bias, tokens_, precision_);
        return;
    }
    const int mi = static_cast<int>(m);
    const std::int64_t in = adapters_.in_features(m);
    const float* u = x;
    if (dropout_on_) {
        const auto offset = static_cast<std::uint64_t>((l * linear_module_count + mi) * max_tokens_ * max_in_);
        kernels::dropout_forward(s.u[mi], s.keep[mi], x, tokens_ * in, static_cast<float>(adapters_.config().dropout),
                                 dropout_seed_, offset);
        u = s.u[mi];
    }
    const kernels::LoraShape shape{tokens_, in, adapters_.out_features(m), rank_, adapters_.scale(), precision_};
    if (base)
        kernels::linear_with_lora_forward(y, s.xa[mi], x, u, frozen(l, m, w), bias, adapters_.a(l, m),
                                          adapters_.b(l, m), shape);
    else
        kernels::lora_forward(y, s.xa[mi], u, adapters_.a(l, m), adapters_.b(l, m), shape);
}

void TrainableDecoder::linear_backward(std::int64_t l, LoraModule m, const LayerActs& s, float* dx, const float* dy,
                                       const float* x, const kernels::Matrix& w) {
    if (!adapters_.adapts(l, m)) {
        kernels::matmul_backward_input(dx, dy, frozen(l, m, w), tokens_, precision_);
        return;
    }
    const int mi = static_cast<int>(m);
    const std::int64_t in = adapters_.in_features(m);
    const kernels::LoraShape shape{tokens_, in, adapters_.out_features(m), rank_, adapters_.scale(), precision_};
    if (dropout_on_) {
        kernels::matmul_backward_input(dx, dy, frozen(l, m, w), tokens_, precision_);
        zero(du_, tokens_ * in);
        kernels::lora_backward(du_, adapters_.grad_a(l, m), adapters_.grad_b(l, m), dy, s.u[mi], s.xa[mi],
                               adapters_.a(l, m), adapters_.b(l, m), shape);
        kernels::dropout_backward(dx, du_, s.keep[mi], tokens_ * in, static_cast<float>(adapters_.config().dropout));
    } else {
        kernels::linear_with_lora_backward(dx, adapters_.grad_a(l, m), adapters_.grad_b(l, m), dy, x, s.xa[mi],
                                           frozen(l, m, w), adapters_.a(l, m), adapters_.b(l, m), shape);
    }
}

kernels::AttentionShape TrainableDecoder::layer_attention(std::int64_t l, const LayerSpec& spec) const {
    kernels::AttentionShape shape = attention_;
    shape.window = spec.attention.window;
    shape.sinks = base_.layers()[static_cast<std::size_t>(l)].sinks;
    return shape;
}

void TrainableDecoder::attend(std::int64_t l, const LayerSpec& spec, LayerActs& s) {
    kernels::attention_forward_saving(s.att, s.probabilities, s.q, s.k, s.v, layer_attention(l, spec));
}

void TrainableDecoder::attend_backward(std::int64_t l, const LayerSpec& spec, const LayerActs& s, LayerGrads& g) {
    kernels::attention_backward_saved(g.dq, g.dk, g.dv, g.datt, s.probabilities, s.q, s.k, s.v,
                                      layer_attention(l, spec));
}

void TrainableDecoder::experts(std::int64_t l, const MoeMlpSpec& spec, const MoeWeights& w, LayerActs& s, float* y,
                               const float* x) {
    const MoeLora lora = adapters_.expert_adapter(l);
    moe_mlp_forward(y, x, tokens_, w, spec, &lora, *s.moe, precision_);
}

void TrainableDecoder::experts_backward(std::int64_t l, const MoeMlpSpec& spec, const MoeWeights& w,
                                        const LayerActs& s, float* dx, const float* dy) {
    const MoeLora lora = adapters_.expert_adapter(l);
    const MoeLoraGrads grads = adapters_.expert_gradients(l);
    moe_mlp_backward(dx, dy, tokens_, *s.moe, w, spec, &lora, &grads, precision_);
}

}  // namespace kindred::model
