// model/decoder.cpp — binding the tensors a ModelSpec calls for and the inference pass over the
// shared layer pieces (see decoder.h).
#include "model/decoder.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/attention.h"
#include "kernels/dequantize.h"
#include "kernels/lora.h"
#include "kernels/norm.h"

namespace kindred::model {

Decoder::Decoder(ModelConfig config, Weights weights, std::int64_t max_batch)
    : config_(std::move(config)), weights_(std::move(weights)), max_batch_(max_batch) {
    const std::string& source = weights_.source();
    config_.validate(source);
    spec_ = resolve_model_spec(config_, weights_.qk_interleaved, source);
    if (max_batch_ < 1) fail("decoder: max_batch must be positive, got {}", max_batch_);
    const LayerShape& shape = spec_.shape;
    const std::int64_t hidden = shape.hidden, head_dim = shape.head_dim;

    embedding_ = bind_matrix("token_embd.weight", config_.vocab_size, hidden);
    // Tied models reuse the embedding rows as the output projection (a copy stored beside them,
    // as some HF checkpoints carry, is the same matrix and is not read).
    output_ = config_.tie_word_embeddings ? embedding_ : bind_matrix("output.weight", config_.vocab_size, hidden);
    output_norm_ = bind_vector("output_norm.weight", hidden);
    for (std::int64_t l = 0; l < config_.num_layers; ++l) layers_.push_back(bind_layer(l));

    // GGUF files of Llama 3.1 and later carry their rope scaling as per-frequency divisors
    // (ggml's freq_factors) instead of metadata; they scale the config's table.
    if (weights_.find("rope_freqs.weight") != nullptr) {
        if (config_.rope_scaling.type != RopeScalingType::None)
            fail("{}: rope_freqs.weight and a rope scaling config both scale the rotary frequencies", source);
        const float* divisors = bind_vector("rope_freqs.weight", head_dim / 2);
        std::vector<float>& inv_freq = spec_.rope.front().inverse_frequencies;
        for (std::size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] /= divisors[i];
    }

    // One arena for every activation; pages are touched only as far as the batches reach.
    const std::int64_t tables = static_cast<std::int64_t>(spec_.rope.size());
    const std::int64_t per_token = 2 * hidden + 2 * shape.q_dim + 2 * shape.kv_dim + 2 * shape.ff + tables * head_dim;
    arena_ = aligned_array<float>(per_token * max_batch_);
    float* next = arena_.get();
    auto take = [&](std::int64_t floats_per_token) {
        float* view = next;
        next += floats_per_token * max_batch_;
        return view;
    };
    // Inference keeps nothing for a backward: each buffer is reused as soon as its value is
    // consumed (the norms' outputs and both blocks' branches share one), q/k are normed in place,
    // the activation overwrites gate, and the residual stream is updated in place.
    LayerActs& s = act_.layer;
    act_.x = take(hidden);
    s.x_mid = act_.x;
    s.n1 = s.n2 = s.attn_out = s.mlp_out = s.branch = take(hidden);
    s.q = s.q_pre = take(shape.q_dim);
    s.k = s.k_pre = take(shape.kv_dim);
    s.v = take(shape.kv_dim);
    s.att = take(shape.q_dim);
    s.gate = s.h = take(shape.ff);
    s.up = take(shape.ff);
    s.moe = moe_act_.get();
    for (std::int64_t i = 0; i < tables; ++i) {
        RopeRows& rows = act_.rope.emplace_back();
        rows.cos = take(head_dim / 2);
        rows.sin = take(head_dim / 2);
    }
    positions_.resize(static_cast<std::size_t>(max_batch_));
}

Decoder::Layer Decoder::bind_layer(std::int64_t l) {
    const LayerSpec& spec = spec_.layers[static_cast<std::size_t>(l)];
    const LayerShape& shape = spec_.shape;
    const std::int64_t hidden = shape.hidden, q_dim = shape.q_dim, kv_dim = shape.kv_dim, ff = shape.ff;
    const std::string prefix = "blk." + std::to_string(l) + ".";
    Layer layer;
    layer.attn_norm = bind_vector(prefix + "attn_norm.weight", hidden);
    layer.ffn_norm = bind_vector(prefix + "ffn_norm.weight", hidden);
    layer.q = bind_matrix(prefix + "attn_q.weight", q_dim, hidden);
    layer.k = bind_matrix(prefix + "attn_k.weight", kv_dim, hidden);
    layer.v = bind_matrix(prefix + "attn_v.weight", kv_dim, hidden);
    layer.o = bind_matrix(prefix + "attn_output.weight", hidden, q_dim);
    if (spec.mlp.kind == MlpSpec::Kind::MixtureOfExperts) {
        layer.moe = bind_moe_weights(weights_, config_, l);
    } else {
        layer.gate = bind_matrix(prefix + "ffn_gate.weight", ff, hidden);
        layer.up = bind_matrix(prefix + "ffn_up.weight", ff, hidden);
        layer.down = bind_matrix(prefix + "ffn_down.weight", hidden, ff);
    }
    if (spec.attention.sinks) layer.sinks = bind_vector(prefix + "attn_sinks.weight", shape.heads);
    if (spec.attention.qk_norm) {
        layer.q_norm = bind_vector(prefix + "attn_q_norm.weight", shape.head_dim);
        layer.k_norm = bind_vector(prefix + "attn_k_norm.weight", shape.head_dim);
    }
    if (spec.attention.bias) {
        layer.q_bias = bind_vector(prefix + "attn_q.bias", q_dim);
        layer.k_bias = bind_vector(prefix + "attn_k.bias", kv_dim);
        layer.v_bias = bind_vector(prefix + "attn_v.bias", kv_dim);
        layer.o_bias = bind_vector(prefix + "attn_output.bias", hidden);
    }
    if (spec.norms == NormPlacement::Sandwich) {
        layer.post_attn_norm = bind_vector(prefix + "post_attention_norm.weight", hidden);
        layer.post_ffn_norm = bind_vector(prefix + "post_ffw_norm.weight", hidden);
    }
    return layer;
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

Decoder Decoder::from_gguf(const gguf::File& file, BaseQuantization quantization, const QuantizeProgress& progress) {
    Weights weights = load_weights(file);
    quantize_weights(weights, quantization, progress);
    return Decoder(model_config_from_gguf(file), std::move(weights));
}

Decoder Decoder::from_checkpoint(const safetensors::Checkpoint& checkpoint, const ModelConfig& config,
                                 BaseQuantization quantization, const QuantizeProgress& progress) {
    Weights weights = load_weights(checkpoint, config.architecture);
    quantize_weights(weights, quantization, progress);
    return Decoder(config, std::move(weights));
}

void Decoder::check_adapter(const LoraAdapters& adapters) const {
    if (adapters.layers() != config_.num_layers)
        fail("{}: the adapter has {} layers, the model {}", weights_.source(), adapters.layers(), config_.num_layers);
    check_adapter_fits(adapters, layers_, weights_.source());
}

void Decoder::set_products(kernels::Precision products) {
    if (products == kernels::Precision::BF16) fail("decoder: inference products are fp32 or int8, not bf16");
    products_ = products;
}

void Decoder::set_kv_cache_type(DType type) {
    check_kv_cache_type(config_, type);
    kv_cache_type_ = type;
}

void Decoder::attach_adapter(const LoraAdapters* adapters) {
    if (adapters != nullptr) check_adapter(*adapters);
    adapter_ = adapters;
}

void Decoder::forward(std::span<const std::int32_t> tokens, KvCache& cache, std::span<float> logits, bool all_logits) {
    const SequenceStep step{tokens, &cache, adapter_, all_logits ? LogitRows::Every : LogitRows::Last};
    forward_batch({&step, 1}, logits);
}

void Decoder::check_step(const SequenceStep& step) const {
    const auto count = static_cast<std::int64_t>(step.tokens.size());
    const std::int64_t vocab = config_.vocab_size;
    if (count == 0) fail("decoder: forward needs at least one token");
    if (step.cache == nullptr) fail("decoder: a sequence has no KV cache");
    const KvCache& cache = *step.cache;
    if (!cache.fits(config_)) fail("decoder: the KV cache was shaped for another model");
    if (cache.size() + count > cache.capacity())
        fail("decoder: {} tokens after {} cached exceed the KV cache capacity of {}", count, cache.size(), cache.capacity());
    if (cache.size() + count > config_.context_length)
        fail("decoder: {} tokens after {} cached exceed the context length of {}", count, cache.size(), config_.context_length);
    for (std::size_t i = 0; i < step.tokens.size(); ++i)
        if (step.tokens[i] < 0 || step.tokens[i] >= vocab)
            fail("decoder: token id {} at index {} is outside the vocabulary of {}", step.tokens[i], i, vocab);
    if (step.adapter != nullptr) check_adapter(*step.adapter);
}

void Decoder::forward_batch(std::span<const SequenceStep> steps, std::span<float> logits) {
    if (steps.empty()) fail("decoder: a batched forward needs at least one sequence");
    const std::int64_t vocab = config_.vocab_size;
    std::int64_t logit_rows = 0, rank = 0;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const SequenceStep& step = steps[i];
        check_step(step);
        for (std::size_t j = 0; j < i; ++j)
            if (steps[j].cache == step.cache) fail("decoder: sequences {} and {} of a batch share one KV cache", j, i);
        if (step.logits == LogitRows::Every) logit_rows += static_cast<std::int64_t>(step.tokens.size());
        if (step.logits == LogitRows::Last) logit_rows += 1;
        if (step.adapter != nullptr) rank = std::max<std::int64_t>(rank, step.adapter->config().rank);
    }
    if (logits.size() != static_cast<std::size_t>(logit_rows * vocab))
        fail("decoder: logits span holds {} floats, expected {}", logits.size(), logit_rows * vocab);
    if (adapter_xa_.size() < static_cast<std::size_t>(max_batch_ * rank))
        adapter_xa_.resize(static_cast<std::size_t>(max_batch_ * rank));

    // Fill passes of up to max_batch rows in the order of `steps`; a sequence that does not fit
    // the room left goes on in the next pass, after its first part is in its cache.
    float* out = logits.data();
    pieces_.clear();
    rows_ = 0;
    for (const SequenceStep& step : steps) {
        const auto count = static_cast<std::int64_t>(step.tokens.size());
        for (std::int64_t first = 0; first < count;) {
            const std::int64_t n = std::min(max_batch_ - rows_, count - first);
            pieces_.push_back({&step, first, n, rows_, step.cache->size()});
            rows_ += n;
            first += n;
            if (rows_ == max_batch_) {
                out += forward_pass(out);
                pieces_.clear();
                rows_ = 0;
            }
        }
    }
    if (rows_ > 0) forward_pass(out);
}

// Inference's side of the layer pieces over a pass's pieces: each linear once over every row plus
// each sequence's adapter term on its own rows, keys and values appended to each sequence's
// cache, attention of its rows over its cache alone.
class Decoder::Ops final : public LayerOps {
public:
    Ops(Decoder& decoder, const kernels::AttentionShape& shape) : decoder_(decoder), shape_(shape) {}

    // Inference never recomputes, so `base` is always true here.
    void linear(std::int64_t layer, LoraModule module, LayerActs&, float* y, const float* x, const kernels::Matrix& w,
                const float* bias, bool) override {
        kernels::matmul_forward(y, x, w, bias, decoder_.rows_, decoder_.products_);
        // One call per piece, even for neighbours on one adapter: the term then sums in the order
        // it does alone, and its few products (rank columns) gain nothing from more rows.
        for (const Piece& piece : decoder_.pieces_) {
            const LoraAdapters* adapter = piece.step->adapter;
            if (adapter == nullptr || !adapter->adapts(layer, module)) continue;
            kernels::LoraShape shape;
            shape.tokens = piece.count;
            shape.in = w.cols;
            shape.out = w.rows;
            shape.rank = adapter->config().rank;
            shape.scale = adapter->scale();
            kernels::lora_forward(y + piece.row * w.rows, decoder_.adapter_xa_.data(), x + piece.row * w.cols,
                                  adapter->a(layer, module), adapter->b(layer, module), shape);
        }
    }

    void attend(std::int64_t layer, const LayerSpec& spec, LayerActs& s) override {
        const std::int64_t kv_dim = shape_.kv_heads * shape_.head_dim, q_dim = shape_.heads * shape_.head_dim;
        for (const Piece& piece : decoder_.pieces_) {
            KvCache& cache = *piece.step->cache;
            for (std::int64_t t = 0; t < piece.count; ++t)
                cache.store(layer, piece.past + t, s.k + (piece.row + t) * kv_dim, s.v + (piece.row + t) * kv_dim);
            kernels::AttentionShape shape = shape_;
            shape.tokens = piece.count;
            shape.past = piece.past;
            shape.kv_head_stride = cache.head_stride();
            shape.kv_type = cache.type();
            shape.window = spec.attention.window;
            shape.sinks = decoder_.layers_[static_cast<std::size_t>(layer)].sinks;
            kernels::attention_forward(s.att + piece.row * q_dim, s.q + piece.row * q_dim, cache.keys(layer),
                                       cache.values(layer), shape);
        }
    }

    void experts(std::int64_t layer, const MoeMlpSpec& spec, const MoeWeights& w, LayerActs& s, float* y,
                 const float* x) override {
        // Per piece: each sequence's rows with its own adapter's expert terms.
        const std::int64_t hidden = decoder_.spec_.shape.hidden;
        for (const Piece& piece : decoder_.pieces_) {
            const LoraAdapters* adapter = piece.step->adapter;
            const MoeLora lora = adapter != nullptr ? adapter->expert_adapter(layer) : MoeLora{};
            moe_mlp_forward(y + piece.row * hidden, x + piece.row * hidden, piece.count, w, spec, &lora, *s.moe,
                            decoder_.products_);
        }
    }

private:
    Decoder& decoder_;
    kernels::AttentionShape shape_;
};

std::int64_t Decoder::forward_pass(float* logits) {
    const std::int64_t T = rows_;
    const LayerShape& shape = spec_.shape;
    const std::int64_t hidden = shape.hidden;

    for (const Piece& piece : pieces_) {
        embed_tokens(spec_, embedding_, piece.step->tokens.data() + piece.first, piece.count, act_.x + piece.row * hidden);
        for (std::int64_t t = 0; t < piece.count; ++t)
            positions_[static_cast<std::size_t>(piece.row + t)] = static_cast<std::int32_t>(piece.past + t);
    }
    fill_rope_rows(spec_, act_.rope, 0, positions_.data(), T);

    kernels::AttentionShape attention;
    attention.heads = shape.heads;
    attention.kv_heads = shape.kv_heads;
    attention.head_dim = shape.head_dim;
    attention.scale = spec_.attention_scale;
    Ops ops(*this, attention);
    for (std::size_t l = 0; l < layers_.size(); ++l)
        layer_forward(shape, spec_.layers[l], layers_[l], act_.rope, ops, static_cast<std::int64_t>(l), T, act_.layer,
                      act_.x, act_.x);
    for (const Piece& piece : pieces_) piece.step->cache->advance(piece.count);

    // Only the rows whose logits are wanted go through the final norm and the vocabulary product.
    float* normed = act_.layer.n1;
    std::int64_t rows = 0;
    for (const Piece& piece : pieces_) {
        const SequenceStep& step = *piece.step;
        const bool ends_step = piece.first + piece.count == static_cast<std::int64_t>(step.tokens.size());
        std::int64_t first = piece.count, wanted = 0;
        if (step.logits == LogitRows::Every) first = 0, wanted = piece.count;
        if (step.logits == LogitRows::Last && ends_step) first = piece.count - 1, wanted = 1;
        if (wanted == 0) continue;
        kernels::rmsnorm_forward(normed + rows * hidden, nullptr, act_.x + (piece.row + first) * hidden, output_norm_,
                                 wanted, hidden, shape.norm_eps, shape.norm_weight_offset);
        rows += wanted;
    }
    if (rows == 0) return 0;
    kernels::matmul_forward(logits, normed, output_, nullptr, rows, products_);
    soft_cap_logits(spec_, logits, rows * config_.vocab_size);
    last_hidden_ = {normed + (rows - 1) * hidden, static_cast<std::size_t>(hidden)};
    return rows * config_.vocab_size;
}

}  // namespace kindred::model
