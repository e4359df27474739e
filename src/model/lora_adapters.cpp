// model/lora_adapters.cpp — adapter layout, PEFT names, HF-layout import/export (see lora_adapters.h).
#include "model/lora_adapters.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/error.h"
#include "kernels/lora.h"

namespace kindred::model {
namespace {

constexpr std::array<const char*, lora_module_count> module_names = {"q",    "k",  "v",    "o",
                                                                     "gate", "up", "down", "experts_gate_up",
                                                                     "experts_down"};
constexpr std::array<const char*, 7> peft_paths = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                   "mlp.down_proj"};

bool is_dense_mlp_module(LoraModule module) {
    return module == LoraModule::Gate || module == LoraModule::Up || module == LoraModule::Down;
}

// Whether layer `layer` of `model` has `module`.
bool layer_has(const ModelConfig& model, std::int64_t layer, LoraModule module) {
    if (is_expert_module(module)) return model.moe_layer(layer);
    if (is_dense_mlp_module(module)) return !model.moe_layer(layer);
    return true;
}

}  // namespace

const char* lora_module_name(LoraModule module) { return module_names[static_cast<std::size_t>(module)]; }

LoraAdapters::LoraAdapters(const ModelConfig& model, LoraConfig config, bool qk_interleaved, LoraUse use)
    : config_(std::move(config)), layers_(model.num_layers), head_dim_(model.head_dim), experts_(model.num_experts),
      qk_interleaved_(qk_interleaved) {
    if (config_.rank < 1) fail("lora: rank must be positive, got {}", config_.rank);
    if (!(config_.alpha > 0)) fail("lora: alpha must be positive, got {}", config_.alpha);
    if (!(config_.dropout >= 0 && config_.dropout < 1)) fail("lora: dropout must be in [0, 1), got {}", config_.dropout);
    if (config_.first_layer < 0 || config_.first_layer > layers_)
        fail("lora: first_layer {} is outside the model's layers 0..{}", config_.first_layer, layers_);
    scale_ = kernels::lora_scale(static_cast<float>(config_.alpha), config_.rank, config_.rslora);

    const std::int64_t hidden = model.hidden_size, ff = model.intermediate_size, n = model.moe_intermediate_size;
    const std::int64_t q_dim = model.num_heads * model.head_dim, kv_dim = model.num_kv_heads * model.head_dim;
    const std::int64_t dims[lora_module_count][2] = {{hidden, q_dim}, {hidden, kv_dim}, {hidden, kv_dim},
                                                     {q_dim, hidden}, {hidden, ff},     {hidden, ff},
                                                     {ff, hidden},    {hidden, 2 * n},  {n, hidden}};
    std::memcpy(dims_, dims, sizeof dims_);
    for (const std::string& target : config_.targets) {
        const auto* found = std::find(module_names.begin(), module_names.end(), target);
        if (found == module_names.end())
            fail("lora: unknown target module '{}' (expected q, k, v, o, gate, up, down, experts_gate_up or "
                 "experts_down)", target);
        const auto m = static_cast<std::size_t>(found - module_names.begin());
        if (targeted_[m]) fail("lora: target module '{}' is listed twice", target);
        targeted_[m] = true;
    }
    if (config_.targets.empty()) fail("lora: no target modules");
    // Checked before anything is sized by the rank (a huge one would otherwise end in bad_alloc).
    for (int m = 0; m < lora_module_count; ++m) {
        if (!targeted_[m]) continue;
        const auto module = static_cast<LoraModule>(m);
        bool somewhere = false;
        for (std::int64_t l = 0; l < layers_; ++l) somewhere = somewhere || layer_has(model, l, module);
        if (!somewhere)
            fail("lora: target module '{}' (adapter.targets) is in no layer of this {} model: {}", module_names[m],
                 architecture_name(model.architecture),
                 is_expert_module(module) ? "it has no mixture-of-experts layers"
                                          : "every MLP is mixture-of-experts; target experts_gate_up and experts_down");
        if (is_expert_module(module) && config_.dropout > 0)
            fail("lora: dropout (adapter.dropout) {} on expert stacks: PEFT cannot apply dropout to a parameter's "
                 "adapter (its ParamWrapper refuses lora_dropout); set adapter.dropout=0", config_.dropout);
        const std::int64_t smaller = std::min(dims_[m][0], dims_[m][1]);
        if (config_.rank > smaller)
            fail("lora: rank (adapter.rank, PEFT's r) {} is above {}, the smaller dimension of target module '{}' "
                 "({} -> {} features)", config_.rank, smaller, module_names[static_cast<std::size_t>(m)], dims_[m][0],
                 dims_[m][1]);
    }

    const std::int64_t rank = config_.rank;
    const bool both_stacks = targeted_[static_cast<int>(LoraModule::ExpertsGateUp)] &&
                             targeted_[static_cast<int>(LoraModule::ExpertsDown)];
    std::uint64_t skipped = 0;  // adapters the layers below first_layer would have had
    slot_.resize(static_cast<std::size_t>(layers_));
    for (std::int64_t l = 0; l < layers_; ++l)
        for (int m = 0; m < lora_module_count; ++m) {
            const auto module = static_cast<LoraModule>(m);
            int& slot = slot_[static_cast<std::size_t>(l)][static_cast<std::size_t>(m)];
            slot = -1;
            if (!targeted_[m] || !layer_has(model, l, module)) continue;
            if (l < config_.first_layer) {
                ++skipped;
                continue;
            }
            slot = static_cast<int>(tensors_.size());
            const std::string layer = "base_model.model.model.layers." + std::to_string(l) + ".";
            std::string prefix;
            std::int64_t a_rows = rank, b_cols = rank;
            if (is_expert_module(module)) {
                prefix = layer + (module == LoraModule::ExpertsGateUp && both_stacks ? "mlp.experts.base_layer"
                                                                                        : "mlp.experts");
                a_rows = b_cols = rank * experts_;
            } else {
                prefix = layer + peft_paths[static_cast<std::size_t>(m)];
            }
            tensors_.push_back({prefix + ".lora_A.weight", l, module, false, a_rows, dims_[m][0], count_});
            count_ += a_rows * dims_[m][0];
            tensors_.push_back({prefix + ".lora_B.weight", l, module, true, dims_[m][1], b_cols, count_});
            count_ += dims_[m][1] * b_cols;
        }

    const bool training = use == LoraUse::Training;
    storage_.reset(new float[static_cast<std::size_t>((training ? 4 : 1) * count_)]());
    params_ = storage_.get();
    if (training) {
        grads_ = params_ + count_;
        m_ = grads_ + count_;
        v_ = m_ + count_;
    }
    for (std::size_t i = 0; i < tensors_.size(); i += 2) {
        const LoraTensorInfo& a = tensors_[i];
        const std::uint64_t seed = config_.seed ^ ((skipped + i / 2 + 1) * 0x9E3779B97F4A7C15ull);
        kernels::lora_init(params_ + a.offset, params_ + tensors_[i + 1].offset, a.rows, a.cols, tensors_[i + 1].rows,
                           seed);
    }
}

float* LoraAdapters::ptr(float* base, std::int64_t layer, LoraModule module, bool is_b) const {
    const int slot = slot_[static_cast<std::size_t>(layer)][static_cast<std::size_t>(module)];
    if (slot < 0) return nullptr;
    return base + tensors_[static_cast<std::size_t>(slot + (is_b ? 1 : 0))].offset;
}

MoeLora LoraAdapters::expert_adapter(std::int64_t layer) const {
    return {a(layer, LoraModule::ExpertsGateUp), b(layer, LoraModule::ExpertsGateUp), a(layer, LoraModule::ExpertsDown),
            b(layer, LoraModule::ExpertsDown),   config_.rank,                        scale_};
}

MoeLoraGrads LoraAdapters::expert_gradients(std::int64_t layer) {
    return {grad_a(layer, LoraModule::ExpertsGateUp), grad_b(layer, LoraModule::ExpertsGateUp),
            grad_a(layer, LoraModule::ExpertsDown), grad_b(layer, LoraModule::ExpertsDown)};
}

const LoraTensorInfo& LoraAdapters::tensor(const std::string& peft_name) const {
    for (const LoraTensorInfo& info : tensors_)
        if (info.name == peft_name) return info;
    fail("lora: no adapter tensor named '{}'", peft_name);
}

const LoraTensorInfo& LoraAdapters::tensor(std::int64_t layer, LoraModule module, bool is_b) const {
    const int slot = layer >= 0 && layer < layers_ ? slot_[static_cast<std::size_t>(layer)][static_cast<std::size_t>(module)] : -1;
    if (slot < 0) fail("lora: layer {} has no adapter on module {}", layer, lora_module_name(module));
    return tensors_[static_cast<std::size_t>(slot + (is_b ? 1 : 0))];
}

void LoraAdapters::require_training(const char* what) const {
    if (!trainable()) fail("lora: {} needs adapters made for training; these were made for inference", what);
}

std::span<float> LoraAdapters::grads() {
    require_training("grads");
    return {grads_, static_cast<std::size_t>(count_)};
}

std::span<const float> LoraAdapters::grads() const {
    require_training("grads");
    return {grads_, static_cast<std::size_t>(count_)};
}

void LoraAdapters::zero_grads() {
    require_training("zero_grads");
    std::fill(grads_, grads_ + count_, 0.0f);
}

std::int64_t LoraAdapters::internal_row(const LoraTensorInfo& info, std::int64_t hf_row) const {
    const bool permuted = qk_interleaved_ && info.is_b && (info.module == LoraModule::Q || info.module == LoraModule::K);
    if (!permuted) return hf_row;
    // HF row i (< head_dim/2) of a head sits at 2i, row i + head_dim/2 at 2i + 1.
    const std::int64_t head = hf_row / head_dim_, within = hf_row % head_dim_, half = head_dim_ / 2;
    return head * head_dim_ + (within < half ? 2 * within : 2 * (within - half) + 1);
}

void LoraAdapters::set_hf(const std::string& peft_name, std::span<const float> values) {
    const LoraTensorInfo& info = tensor(peft_name);
    if (static_cast<std::int64_t>(values.size()) != info.rows * info.cols)
        fail("lora: '{}' takes {} values, got {}", peft_name, info.rows * info.cols, values.size());
    for (std::int64_t r = 0; r < info.rows; ++r)
        std::copy_n(values.data() + r * info.cols, info.cols, params_ + info.offset + internal_row(info, r) * info.cols);
}

void LoraAdapters::get_hf(const std::string& peft_name, std::span<float> out, bool gradient) const {
    const LoraTensorInfo& info = tensor(peft_name);
    if (static_cast<std::int64_t>(out.size()) != info.rows * info.cols)
        fail("lora: '{}' holds {} values, the span {}", peft_name, info.rows * info.cols, out.size());
    if (gradient) require_training("get_hf of a gradient");
    const float* base = (gradient ? grads_ : params_) + info.offset;
    for (std::int64_t r = 0; r < info.rows; ++r)
        std::copy_n(base + internal_row(info, r) * info.cols, info.cols, out.data() + r * info.cols);
}

void LoraAdapters::adamw_step(const kernels::AdamWConfig& config, std::int64_t step) {
    require_training("adamw_step");
    kernels::adamw_step(params_, grads_, m_, v_, count_, config, step);
}

}  // namespace kindred::model
