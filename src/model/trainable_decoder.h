// model/trainable_decoder.h — QLoRA training passes of a Decoder: the forward over one packed row
// of documents saving what backward needs, the hand-written backward producing the LoRA gradients
// (the base weights stay frozen and possibly quantized; they only pass gradients through), and
// the loss by fused cross-entropy against the output matrix (kernels/loss.h), so the
// [tokens x vocab] logits never exist.
//
// Memory. Every buffer is planned at construction for `max_tokens` tokens in one fp32 allocation
// (plus one byte allocation for dropout masks), so a training step allocates nothing. Without
// activation checkpointing each layer keeps its norms' outputs and rstd, post-rope q/k, v, the
// attention output, the mid-layer residual, gate/up/activation and every adapter's rank-sized
// product plus the layer's input: per token and layer 4·hidden + 2·(q_dim + kv_dim) + 3·ff + 2 + 7·rank floats
// (SmolLM2, rank 16: 8.6 K floats, 34 KB, so 512 tokens x 30 layers ≈ 525 MB), and the attention
// probabilities, which spare the backward recomputing them (heads x ~tokens²/2 floats per layer:
// SmolLM2 at 512 tokens 5.3 MB per layer, 159 MB in all; measured ~12% less attention time,
// ~2% of a step). With checkpointing only
// each layer's input residual is kept (hidden floats per token and layer) and backward recomputes
// the layer's forward into one shared set of buffers before differentiating it: about one more
// forward pass of compute, minus the frozen down projection whose output backward does not need
// (measured +6% to +25% per step, SmolLM2, 256 tokens, noisy 2-core machine), for a ~15x smaller
// activation footprint.
//
// Frozen weights stay in their stored type: kernels/matmul.h dequantizes L2-sized panels of them
// on the fly. Products against them (layers and the output projection of the losses) run in the
// constructor's Precision: fp32, or bf16 as QLoRA computes (operands rounded to bfloat16, sums in
// fp32; on AMX CPUs several times faster, see kernels/matmul.h). Adapters, their products,
// attention, norms and gradients stay fp32 either way. (Keeping fp32 copies of all of SmolLM2's weights, 538 MB, and grouping q/k/v into
// one product was measured: 2-5% faster frozen products on one thread, nothing per step on the
// shared 2-core machine, where reading 4-byte weights costs memory bandwidth; not kept.)
//
// Packing. A batch is one row of concatenated documents: `segment_ids` (non-decreasing) keep
// attention within a document and `positions` restart per document (rope uses them), which
// computes exactly what running the documents one by one computes. `prefix_segment_ids` let
// documents continue one shared prefix packed once (preference pairs' prompt, train/shared_prefix.h).
//
// Dropout (LoraConfig::dropout > 0) draws from kernels/lora.h's counter stream with
// seed = adapters' seed + (step + 1) · 0x632BE59BD9B4E019 and, for layer l and module m, offset
// (l · 7 + m) · max_tokens · max_in, so a recomputed layer draws the same mask; `step` counts
// training forwards (forward_backward and forward). loss_only runs in evaluation mode (no dropout).
//
// Frozen lower layers (LoraConfig::first_layer = F > 0): layers below F have no adapter, so the
// backward stops at layer F (nothing below has a parameter to train; input_gradient() is then an
// Error) and only layers F.. keep activations. Their output depends on the tokens alone, so a
// trainer can compute it once per example with residual_entering() and pass it in
// TrainBatch::residual, skipping F of the layers in every later forward: the same values, since a
// packed document's residual does not depend on its neighbours (segments, positions from 0).
//
// Families: everything the Decoder runs. Layers are the shared pieces of model/layer.h, run
// with this class's LayerTrainingOps (adapters with dropout and saved products, attention over
// the packed row keeping its probabilities); what a layer keeps follows its LayerSpec (qk_norm
// layers also keep q/k before their norm and the per-head rstd; sandwich layers keep both
// projections' outputs and their post-norms' rstd). Mixture-of-experts layers run model/moe_mlp.h
// with the expert-stack adapters (no dropout: PEFT has none there) at the constructor's
// precision, and keep its activations (router logits and weights, the rows gathered per expert,
// gate/up/activation, the adapters' rank-sized products, the experts' outputs: about
// (experts + k·(hidden + 3·n + 2·rank + hidden)) floats per token and layer) in vectors that grow
// to the largest batch seen, so only the first steps allocate.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/aligned.h"
#include "kernels/attention.h"
#include "kernels/loss.h"
#include "model/decoder.h"
#include "model/layer.h"
#include "model/lora_adapters.h"

namespace kindred::model {

// One packed row. targets[t] is the token predicted at t (−100 = not trained on); positions and
// segment_ids may be empty (then 0, 1, … and a single document). prefix_segment_ids (empty: none)
// lets a document continue an earlier one packed once (kernels::AttentionShape::prefix_segment_ids;
// its positions then go on from the prefix's).
struct TrainBatch {
    std::vector<std::int32_t> tokens;
    std::vector<std::int32_t> targets;
    std::vector<std::int32_t> positions;
    std::vector<std::int32_t> segment_ids;
    std::vector<float> residual;
    std::vector<std::int32_t> prefix_segment_ids;
};

class TrainableDecoder : private LayerTrainingOps {
public:
    static constexpr std::int64_t default_max_tokens = 512;

    // `base` and `adapters` must outlive this object; adapters must have been built for base's
    // config and q/k layout. Throws Error when they do not fit or the model has unsupported features.
    TrainableDecoder(const Decoder& base, LoraAdapters& adapters, bool checkpoint_activations,
                     std::int64_t max_tokens = default_max_tokens,
                     kernels::Precision precision = kernels::Precision::F32);

    // Forward and backward over the batch. Returns the summed NLL over target positions (and their
    // count); ADDS loss_scale · d(sum)/d(adapter) into the adapters' gradients (pass 1/count for
    // the mean; the caller zeroes gradients once per accumulation cycle). Throws Error for a
    // malformed batch (sizes, ids outside the vocabulary, positions outside the context, more than
    // max_tokens tokens, decreasing segment ids).
    kernels::CrossEntropyTotals forward_backward(const TrainBatch& batch, float loss_scale);
    // The same loss without gradients (and without dropout).
    kernels::CrossEntropyTotals loss_only(const TrainBatch& batch);

    // For losses other than next-token cross-entropy (classifier heads, distillation): forward()
    // runs the training forward (dropout on) and returns the final hidden states after the output
    // norm [tokens x hidden] (valid until the next call); backward() takes d(loss)/d(those states)
    // and ADDS the adapter gradients. forward_backward is forward + fused CE + backward.
    // With train = false it runs in evaluation mode (no dropout, the dropout stream does not
    // advance) and no backward may follow. backward throws Error without a preceding training
    // forward or for a span of the wrong size.
    std::span<const float> forward(const TrainBatch& batch, bool train = true);
    // The frozen output projection's rows (for losses computed on forward()'s hidden states).
    const kernels::WeightRows& output_rows() const { return output_rows_; }
    void backward(std::span<const float> dhidden);

    // d(loss_scale · sum)/d(first layer's input: the token embeddings times the family's embedding
    // scale) [tokens x hidden] of the last forward_backward. Error when the adapters start above
    // layer 0 (the backward stops there).
    std::span<const float> input_gradient() const;

    // The residual stream entering `layer` [tokens x hidden] for the batch's tokens (its
    // `residual` must be empty), computed in evaluation mode through the layers below (valid
    // until the next call). Error for a layer outside [0, layers] or one above the adapters'
    // first layer (the layers below it must be frozen for the result to be reusable).
    std::span<const float> residual_entering(const TrainBatch& batch, std::int64_t layer);

    // Training forwards made so far: the dropout stream's position. A data-parallel rank that runs
    // only some rows of a step sets it to each row's index in the one-process order first, so every
    // row draws the mask it would draw in a one-process run.
    std::uint64_t training_forwards() const { return step_; }
    void set_training_forwards(std::uint64_t count) { step_ = count; }

    // Whether a batch whose documents continue shared prefixes (TrainBatch::prefix_segment_ids)
    // computes exactly what the batch with each prefix repeated computes: not in a training forward
    // with dropout (each copy of a prefix would draw its own masks) nor with sliding-window layers
    // (refused by the attention).
    bool shares_prefixes_exactly(bool train) const;

    bool checkpointing() const { return checkpoint_; }
    kernels::Precision precision() const { return precision_; }
    std::int64_t max_tokens() const { return max_tokens_; }
    // Bytes of the frozen weights' bf16 packings this trainer reads (0 when its products pack as
    // they go); one set per base decoder, shared by every trainer alive on it (a DPO run's policy
    // and reference scorer, an evaluation beside training).
    std::int64_t packed_weight_bytes() const;
    bool shares_packings_with(const TrainableDecoder& other) const {
        return packings_ != nullptr && packings_ == other.packings_;
    }

private:
    std::int64_t plan(float* floats, std::uint8_t* bytes, std::int64_t& byte_count);
    void pack_frozen_weights();
    // w, or its view with packings when pack_frozen_weights made them.
    const kernels::Matrix& frozen(std::int64_t l, LoraModule m, const kernels::Matrix& w) const;
    void check(const TrainBatch& batch) const;
    void embed(const TrainBatch& batch);
    void begin(const TrainBatch& batch, bool train);
    void forward_pass(const TrainBatch& batch, std::int64_t last_layer);  // runs layers below last_layer
    kernels::CrossEntropyTotals cross_entropy(const TrainBatch& batch, float* dhidden, float loss_scale);
    void backward_pass(const float* dhidden);
    // Layers below first_ (frozen, never differentiated) borrow the first set while they run forward.
    LayerActs& acts(std::int64_t l) {
        return checkpoint_ || l <= first_ ? layer_acts_[0] : layer_acts_[static_cast<std::size_t>(l - first_)];
    }

    // LayerTrainingOps: LoRA with dropout (its input masks and x·Aᵀ kept in the layer's acts) at
    // the constructor's precision; attention within the packed row's documents, its products at
    // that precision too.
    void linear(std::int64_t l, LoraModule m, LayerActs& s, float* y, const float* x, const kernels::Matrix& w,
                const float* bias, bool base) override;
    void attend(std::int64_t l, const LayerSpec& spec, LayerActs& s) override;
    void linear_backward(std::int64_t l, LoraModule m, const LayerActs& s, float* dx, const float* dy, const float* x,
                         const kernels::Matrix& w) override;
    void attend_backward(std::int64_t l, const LayerSpec& spec, const LayerActs& s, LayerGrads& g) override;
    void experts(std::int64_t l, const MoeMlpSpec& spec, const MoeWeights& w, LayerActs& s, float* y,
                 const float* x) override;
    void experts_backward(std::int64_t l, const MoeMlpSpec& spec, const MoeWeights& w, const LayerActs& s, float* dx,
                          const float* dy) override;
    kernels::AttentionShape layer_attention(std::int64_t l, const LayerSpec& spec) const;

    const Decoder& base_;
    LoraAdapters& adapters_;
    bool checkpoint_;
    std::int64_t max_tokens_;
    kernels::Precision precision_;
    std::int64_t hidden_, rank_, max_in_;
    std::int64_t first_;  // the adapters' first layer: backward stops there
    kernels::WeightRows output_rows_;
    kernels::AttentionShape attention_{};

    // State of the batch being run.
    std::int64_t tokens_ = 0;
    std::int64_t last_tokens_ = 0;
    bool dropout_on_ = false;
    bool forward_ready_ = false;  // forward() ran and backward() may follow
    std::uint64_t dropout_seed_ = 0;
    std::uint64_t step_ = 0;

    AlignedArray<float> arena_;
    std::unique_ptr<std::uint8_t[]> masks_;
    // The frozen weights' bf16 packings (null when not made: see pack_frozen_weights), shared by
    // every trainer on the same base decoder.
    struct FrozenPackings;
    std::shared_ptr<const FrozenPackings> packings_;
    std::vector<std::int32_t> segment_ids_;  // the batch's, [max_tokens]
    std::vector<std::int32_t> prefix_segment_ids_;  // the batch's, [max_tokens]
    std::vector<LayerActs> layer_acts_;  // one per layer, or one shared when checkpointing
    std::vector<MoeActivations> moe_acts_;  // beside layer_acts_ (used by mixture-of-experts layers)
    std::vector<RopeRows> rope_;         // per rotary table, [max_tokens x head_dim / 2]
    LayerGrads grads_;                   // a layer's backward scratch
    float* xs_ = nullptr;                // layer inputs [(layers + 1) x T x hidden]; the last is the final residual
    float* final_normed_ = nullptr;
    float* final_rstd_ = nullptr;
    float* dfinal_ = nullptr;
    float* tmp_ = nullptr;  // [T x hidden]: projection outputs before the residual add, post-norm outputs
    float* dx_ = nullptr;   // running gradient of the residual stream
    float* du_ = nullptr;   // adapter input gradient before dropout (dropout only)
};

}  // namespace kindred::model
