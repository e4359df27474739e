// model/layer.h — one decoder layer, composed of small named pieces that inference
// (model::Decoder) and training (model::TrainableDecoder) share:
//
//   attention block: norm → q, k, v (+ biases, adapters) → per-head q/k norm → rope by the
//                    layer's table → attention with the layer's window and sinks → o (+ bias)
//                    → post-norm (sandwich layers) → residual add
//   MLP block:       norm → MLP (dense gated: SwiGLU or GeGLU; or mixture-of-experts, model/moe_mlp.h)
//                    → post-norm (sandwich) → residual add
//
// What a family changes in a layer is data: a LayerSpec, resolved once from ModelConfig by
// model/family.h, so no piece asks which family it runs. What differs between the passes goes
// through LayerOps: how a linear adds its adapter (inference: no dropout; training: dropout,
// saved products, compute precision) and where attention finds keys and values (inference: the
// KV cache; training: the packed row's own projections, probabilities saved for backward).
// Arithmetic is the kernels' (kernels/*.h), which know nothing of models.
//
// A new family variant is a field here, a line in family.cpp that sets it, and the piece that
// reads it (forward and backward side by side in layer.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kernels/activations.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "model/lora_adapters.h"
#include "model/moe_mlp.h"
#include "model/moe_weights.h"

namespace kindred::model {

// The frozen tensors of one layer (views bound by the Decoder; null when the layer has none).
struct LayerWeights {
    const float* attn_norm = nullptr;
    const float* ffn_norm = nullptr;        // the norm before the MLP
    const float* q_norm = nullptr;          // qk_norm layers
    const float* k_norm = nullptr;
    const float* q_bias = nullptr;          // attention_bias layers
    const float* k_bias = nullptr;
    const float* v_bias = nullptr;
    const float* o_bias = nullptr;
    const float* post_attn_norm = nullptr;  // sandwich layers: after o, before the residual add
    const float* post_ffn_norm = nullptr;   // sandwich layers: after down, before the residual add
    const float* sinks = nullptr;           // attention-sink layers: a logit per head [heads]
    kernels::Matrix q, k, v, o, gate, up, down;  // gate, up, down: dense MLP layers
    MoeWeights moe;                         // mixture-of-experts layers
};

struct AttentionSpec {
    bool qk_norm = false;         // per-head RMSNorm on q and k before rope (Qwen3, Gemma 3)
    bool bias = false;            // q, k, v, o biases
    std::int64_t window = 0;      // sliding window in positions, 0 = full causal
    bool sinks = false;           // a learned per-head logit joins the softmax denominator (gpt-oss)
    int rope_table = 0;           // index into ModelSpec::rope
};

struct MlpSpec {
    enum class Kind {
        DenseGated,        // down(act(gate(x)) · up(x))
        MixtureOfExperts,  // model/moe_mlp.h, as `moe` says
    };
    Kind kind = Kind::DenseGated;
    kernels::GateActivation activation = kernels::GateActivation::Silu;  // dense layers
    MoeMlpSpec moe;                                                      // mixture-of-experts layers
};

enum class NormPlacement {
    Pre,       // Llama: RMSNorm before attention and before the MLP
    Sandwich,  // Gemma: also after each, on the branch before its residual add
};

struct LayerSpec {
    AttentionSpec attention;
    MlpSpec mlp;
    NormPlacement norms = NormPlacement::Pre;
};

// Model-wide facts every layer reads (the rest of ModelSpec, family.h, is model-level).
struct LayerShape {
    std::int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, q_dim = 0, kv_dim = 0, ff = 0;
    float norm_eps = 1e-5f;
    bool norm_weight_offset = false;  // every RMSNorm multiplies by (1 + w): Gemma's HF weights
    kernels::RopePairing rope_pairing = kernels::RopePairing::Half;
};

// Where one layer's forward writes, [tokens x width] each. Inference keeps nothing for a backward:
// it points q_pre at q, h at gate, x_mid at the residual stream, the post-norm output at the
// projection's, and leaves every rstd null. Training keeps one set per layer (or one shared set
// that backward refills by recomputing the layer) and has distinct buffers throughout.
struct LayerActs {
    float* rstd1 = nullptr;
    float* n1 = nullptr;        // attention block's normed input
    float* q_pre = nullptr;     // qk_norm: q, k before their per-head norm (may alias q, k)
    float* k_pre = nullptr;
    float* rstd_q = nullptr;    // [tokens x heads], [tokens x kv_heads]
    float* rstd_k = nullptr;
    float* q = nullptr;         // after norm and rope
    float* k = nullptr;
    float* v = nullptr;
    float* att = nullptr;       // attention output [tokens x q_dim]
    float* probabilities = nullptr;  // training: attention's softmax (kernels/attention.h's layout)
    float* attn_out = nullptr;  // o projection's output
    float* rstd_post1 = nullptr;
    float* x_mid = nullptr;     // residual stream between the blocks
    float* rstd2 = nullptr;
    float* n2 = nullptr;        // MLP block's normed input
    MoeActivations* moe = nullptr;  // mixture-of-experts layers: what the MoE piece keeps
    float* gate = nullptr;      // [tokens x ff]
    float* up = nullptr;
    float* h = nullptr;         // act(gate) · up
    float* mlp_out = nullptr;   // down projection's output
    float* rstd_post2 = nullptr;
    float* branch = nullptr;    // sandwich: a post-norm's output (may alias attn_out / mlp_out)
    // Adapter state of each targeted module (the training ops' bookkeeping).
    float* xa[lora_module_count] = {};                // x · Aᵀ [tokens x rank]
    float* u[lora_module_count] = {};                 // dropped-out adapter input
    std::uint8_t* keep[lora_module_count] = {};       // dropout mask
};

// Gradient scratch of a layer's backward ([tokens x width] each; training only).
struct LayerGrads {
    float* dn = nullptr;  // a pre-norm's output gradient [tokens x hidden]
    float* dbranch = nullptr;  // sandwich: gradient of a post-norm's input [tokens x hidden]
    float* datt = nullptr;
    float* dq = nullptr;
    float* dk = nullptr;
    float* dv = nullptr;
    float* dq_pre = nullptr;  // qk_norm only
    float* dk_pre = nullptr;
    float* dgate = nullptr;
    float* dup = nullptr;
    float* dh = nullptr;
};

// How a pass runs the parts of a layer that are not the family's business.
class LayerOps {
public:
    // y = x · wᵀ (+ bias), plus the adapter's term when one targets (layer, module); with base
    // false only the adapter's saved state is refreshed (a recomputation whose y is not read).
    virtual void linear(std::int64_t layer, LoraModule module, LayerActs& s, float* y, const float* x,
                        const kernels::Matrix& w, const float* bias, bool base) = 0;
    // s.att = causal attention of s.q over s.k, s.v (and the positions the pass holds before).
    virtual void attend(std::int64_t layer, const LayerSpec& spec, LayerActs& s) = 0;
    // y = the mixture-of-experts MLP of x (model/moe_mlp.h) with the pass's expert adapters, keeping
    // what its backward needs in s.moe; y may be x.
    virtual void experts(std::int64_t layer, const MoeMlpSpec& spec, const MoeWeights& w, LayerActs& s, float* y,
                         const float* x) = 0;

protected:
    ~LayerOps() = default;
};

class LayerTrainingOps : public LayerOps {
public:
    // dx += dy · w, plus the adapter's gradients and its share of dx. x is the forward's input.
    virtual void linear_backward(std::int64_t layer, LoraModule module, const LayerActs& s, float* dx,
                                 const float* dy, const float* x, const kernels::Matrix& w) = 0;
    // dq, dk, dv += attention's gradients given datt (each zeroed by the caller).
    virtual void attend_backward(std::int64_t layer, const LayerSpec& spec, const LayerActs& s, LayerGrads& g) = 0;
    // dx += the experts' input gradient given dy, plus the expert adapters' gradients.
    virtual void experts_backward(std::int64_t layer, const MoeMlpSpec& spec, const MoeWeights& w, const LayerActs& s,
                                  float* dx, const float* dy) = 0;

protected:
    ~LayerTrainingOps() = default;
};

// One rotary table's rows for the tokens of a pass: cos and sin [tokens x head_dim / 2] (filled by
// family.h's fill_rope_rows, read by the layers).
struct RopeRows {
    float* cos = nullptr;
    float* sin = nullptr;
};

// The dense projection `module` names in a layer (Q..Down), or null for the expert modules and
// for a projection the layer lacks (a mixture-of-experts layer's MLP).
const kernels::Matrix* dense_weight(const LayerWeights& w, LoraModule module);

// Throws Error naming `source` when an adapter of some layer maps other features than that
// layer's weights, sits on a module the layer lacks, or has another expert count (an adapter made
// for another model).
void check_adapter_fits(const LoraAdapters& adapters, std::span<const LayerWeights> layers, const std::string& source);

// One layer's forward over `tokens` rows: x_out = layer(x_in). x_out may equal x_in (inference
// updates the residual stream in place). x_out null: a recomputation for backward, which skips
// what backward does not read (the layer's output and, before a plain residual add, the frozen
// down projection).
void layer_forward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w, std::span<const RopeRows> rope,
                   LayerOps& ops, std::int64_t layer, std::int64_t tokens, LayerActs& s, const float* x_in, float* x_out);

// Backward of layer_forward given its saved activations. On entry dx holds d/d(layer output), on
// exit d/d(layer input); adapters' gradients are added through ops.
void layer_backward(const LayerShape& shape, const LayerSpec& spec, const LayerWeights& w,
                    std::span<const RopeRows> rope, LayerTrainingOps& ops, std::int64_t layer, std::int64_t tokens,
                    const LayerActs& s, LayerGrads& g, const float* x_in, float* dx);

}  // namespace kindred::model
