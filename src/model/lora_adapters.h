// model/lora_adapters.h — the trainable part of QLoRA: one low-rank adapter (A [rank x in],
// B [out x rank]) per targeted linear of every decoder layer, with its gradients and AdamW moments.
// Parameters, gradients, first and second moments are four equal views into ONE fp32 allocation
// (llm.c style), so the optimizer, gradient clipping and zeroing run over flat spans. Adapters
// made for inference (LoraUse::Inference: an adapter applied at generation) hold the parameters
// only, a quarter of that; asking them for gradients or a step is an Error.
//
// Layout. Tensors are ordered layer by layer (from LoraConfig::first_layer), modules in the order q,k,v,o,gate,up,down,
// experts_gate_up,experts_down (only the targeted ones the layer has: gate/up/down on dense MLP
// layers, the expert stacks on mixture-of-experts layers), A before B; params()[offset ..
// offset + rows·cols) is one row-major tensor.
//
// Expert stacks. experts_gate_up and experts_down are PEFT's target_parameters
// mlp.experts.gate_up_proj and mlp.experts.down_proj (kernels/moe.h's layout: A [experts · rank x in],
// B [out x rank · experts]; gate_up's out is 2 · the expert width). PEFT nests one ParamWrapper
// per parameter, the last listed outermost, so with both targeted (listed gate_up first, as
// Kindred writes them) gate_up's tensors are named mlp.experts.base_layer.lora_{A,B} and down's
// mlp.experts.lora_{A,B}; with one, it is mlp.experts.lora_{A,B}. PEFT refuses dropout on them,
// and so does this class.
//
// q/k rows. GGUF files of arch `llama` store the q/k weight rows of every head permuted (row 2i
// holds HF row i, row 2i+1 holds HF row i + head_dim/2; see kernels/rope.h) and the decoder runs
// in that order. An adapter adds B·A to those rows, so internally B of q and k is stored in the
// same permuted row order. The permutation happens ONLY at the HF boundary: set_hf()/get_hf()
// (and the PEFT names of tensors()) speak HF layout, everything else the decoder's layout.
// A is never permuted (its input is the hidden state).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "kernels/optimizer.h"
#include "model/moe_mlp.h"

namespace kindred::model {

struct LoraConfig {
    int rank = 16;
    double alpha = 32;
    double dropout = 0.0;  // PEFT's lora_dropout, on each adapter's input
    bool rslora = false;   // scale alpha / √rank instead of alpha / rank
    // Dense models: every projection. Mixture-of-experts models have no gate/up/down on their
    // expert layers: name experts_gate_up and experts_down there (see the layout note above).
    std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
    std::uint64_t seed = 0;  // init and dropout streams (kernels/lora.h)
    // Layers below this one get no adapter (PEFT's layers_to_transform = [first_layer, layers)):
    // they stay the frozen base, so their output is a function of the tokens alone and a trainer
    // may compute it once (train/frozen_cache.h) and backpropagate no further than this layer.
    std::int64_t first_layer = 0;
};

enum class LoraModule { Q, K, V, O, Gate, Up, Down, ExpertsGateUp, ExpertsDown };
enum class LoraUse { Training, Inference };
inline constexpr int lora_module_count = 9;
// q .. down: the modules a layer's linear products adapt (LayerOps::linear); the expert stacks'
// adapters run inside the MoE piece.
inline constexpr int linear_module_count = 7;

// "q", ..., "down", "experts_gate_up", "experts_down": the names of adapter.targets.
const char* lora_module_name(LoraModule module);
inline bool is_expert_module(LoraModule module) {
    return module == LoraModule::ExpertsGateUp || module == LoraModule::ExpertsDown;
}

struct LoraTensorInfo {
    std::string name;      // PEFT key, e.g. base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight
    std::int64_t layer = 0;
    LoraModule module = LoraModule::Q;
    bool is_b = false;
    std::int64_t rows = 0, cols = 0;
    std::int64_t offset = 0;  // into params()/grads()
};

class LoraAdapters {
public:
    // One adapter per targeted module of every layer from first_layer that has it; A by PEFT's
    // default init (kernels::lora_init with stream seed ^ ((adapter index + 1) · 0x9E3779B97F4A7C15),
    // adapters counted in layout order as if first_layer were 0, so a layer's init does not depend
    // on first_layer), B zero. `qk_interleaved` says whether the decoder's q/k rows are GGUF-permuted
    // (Weights::qk_interleaved). Throws Error for an unknown or repeated target, a target no layer
    // has, rank < 1 or above a target's smaller dimension (an expert's, for the stacks), alpha <= 0,
    // dropout outside [0, 1) or above 0 with an expert stack targeted, or first_layer outside
    // [0, layers].
    LoraAdapters(const ModelConfig& model, LoraConfig config, bool qk_interleaved, LoraUse use = LoraUse::Training);

    const LoraConfig& config() const { return config_; }
    float scale() const { return scale_; }
    std::int64_t layers() const { return layers_; }
    std::int64_t first_layer() const { return config_.first_layer; }
    // Whether `module` is targeted (adapts(layer, module) says which layers have an adapter on it).
    bool targets(LoraModule module) const { return targeted_[static_cast<int>(module)]; }
    // Whether (layer, module) has an adapter: a targeted module the layer has, at or above first_layer.
    bool adapts(std::int64_t layer, LoraModule module) const {
        return slot_[static_cast<std::size_t>(layer)][static_cast<std::size_t>(module)] >= 0;
    }
    std::int64_t experts() const { return experts_; }
    bool trainable() const { return grads_ != nullptr; }

    // A and B of (layer, module), or null when it has no adapter (adapts() is false).
    float* a(std::int64_t layer, LoraModule module) { return ptr(params_, layer, module, false); }
    float* b(std::int64_t layer, LoraModule module) { return ptr(params_, layer, module, true); }
    const float* a(std::int64_t layer, LoraModule module) const { return ptr(params_, layer, module, false); }
    const float* b(std::int64_t layer, LoraModule module) const { return ptr(params_, layer, module, true); }
    // Gradients of A and B (training adapters only: null for inference ones).
    float* grad_a(std::int64_t layer, LoraModule module) { return grads_ ? ptr(grads_, layer, module, false) : nullptr; }
    float* grad_b(std::int64_t layer, LoraModule module) { return grads_ ? ptr(grads_, layer, module, true) : nullptr; }
    // in/out features of a module's linear (of one expert's product, for the stacks).
    std::int64_t in_features(LoraModule module) const { return dims_[static_cast<int>(module)][0]; }
    std::int64_t out_features(LoraModule module) const { return dims_[static_cast<int>(module)][1]; }

    // The expert-stack adapters of a mixture-of-experts layer, for model/moe_mlp.h (null pointers
    // where a stack is not targeted); the gradients' pointers are null for inference adapters.
    MoeLora expert_adapter(std::int64_t layer) const;
    MoeLoraGrads expert_gradients(std::int64_t layer);

    const std::vector<LoraTensorInfo>& tensors() const { return tensors_; }
    const LoraTensorInfo& tensor(const std::string& peft_name) const;  // throws Error naming it
    // A or B of (layer, module); Error when there is none.
    const LoraTensorInfo& tensor(std::int64_t layer, LoraModule module, bool is_b) const;

    std::span<float> params() { return {params_, static_cast<std::size_t>(count_)}; }
    std::span<const float> params() const { return {params_, static_cast<std::size_t>(count_)}; }
    // Training adapters only (Error for inference ones), as are get_hf(gradient) and adamw_step.
    std::span<float> grads();
    std::span<const float> grads() const;
    void zero_grads();

    // Copies a tensor in HF layout into the parameters / out of the parameters or gradients
    // (q/k B rows permuted when the decoder's are). Throws Error on an unknown name or wrong size.
    void set_hf(const std::string& peft_name, std::span<const float> values);
    void get_hf(const std::string& peft_name, std::span<float> out, bool gradient = false) const;

    // One AdamW step over every parameter (torch semantics; `step` counts from 1).
    void adamw_step(const kernels::AdamWConfig& config, std::int64_t step);

private:
    float* ptr(float* base, std::int64_t layer, LoraModule module, bool is_b) const;
    void require_training(const char* what) const;
    // Row r of the HF layout of tensor `info` sits at this row internally.
    std::int64_t internal_row(const LoraTensorInfo& info, std::int64_t hf_row) const;

    LoraConfig config_;
    float scale_ = 1.0f;
    std::int64_t layers_ = 0;
    std::int64_t head_dim_ = 0;
    std::int64_t experts_ = 0;
    bool qk_interleaved_ = false;
    bool targeted_[lora_module_count] = {};
    std::int64_t dims_[lora_module_count][2];  // in, out
    std::vector<std::array<int, lora_module_count>> slot_;  // per layer: index of A in tensors_, or -1
    std::vector<LoraTensorInfo> tensors_;
    std::int64_t count_ = 0;
    std::unique_ptr<float[]> storage_;  // params | grads | m | v (params only for inference)
    float* params_ = nullptr;
    float* grads_ = nullptr;
    float* m_ = nullptr;
    float* v_ = nullptr;
};

}  // namespace kindred::model
