// model/weights.cpp — tensor tables of parsed files turned into named views.
#include "model/weights.h"

#include <regex>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

namespace kindred::model {

void Weights::add(std::string name, WeightView view) {
    const auto [it, inserted] = views_.emplace(std::move(name), std::move(view));
    if (!inserted) fail("{}: tensor '{}' appears twice", source_, it->first);
}

const WeightView* Weights::find(std::string_view name) const {
    const auto it = views_.find(name);
    return it == views_.end() ? nullptr : &it->second;
}

const WeightView& Weights::get(std::string_view name) const {
    const WeightView* view = find(name);
    if (view == nullptr) fail("{}: tensor '{}' is missing", source_, name);
    return *view;
}

Weights load_weights(const gguf::File& file) {
    Weights weights(file.name());
    for (const auto& info : file.tensors()) {
        WeightView view{info.type, {}, info.data.data()};
        for (auto it = info.dims.rbegin(); it != info.dims.rend(); ++it) view.shape.push_back(static_cast<std::int64_t>(*it));
        weights.add(info.name, std::move(view));
    }
    const auto* arch = file.metadata().find("general.architecture");
    weights.qk_interleaved = arch != nullptr && file.metadata().string("general.architecture") == "llama";
    return weights;
}

namespace {

// HF tensor names -> GGUF names (llama.cpp's convert_hf_to_gguf mapping).
std::string gguf_name(const std::string& hf, Architecture architecture) {
    static const std::map<std::string, std::string, std::less<>> globals = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const std::map<std::string, std::string, std::less<>> per_layer = {
        {"input_layernorm", "attn_norm"},      {"post_attention_layernorm", "ffn_norm"},
        {"self_attn.q_proj", "attn_q"},        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},        {"self_attn.o_proj", "attn_output"},
        {"self_attn.q_norm", "attn_q_norm"},   {"self_attn.k_norm", "attn_k_norm"},
        {"mlp.gate_proj", "ffn_gate"},         {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
    };
    // Gemma normalises after each block too: its post_attention_layernorm is not the MLP's norm.
    static const std::map<std::string, std::string, std::less<>> gemma_norms = {
        {"post_attention_layernorm", "post_attention_norm"},
        {"pre_feedforward_layernorm", "ffn_norm"},
        {"post_feedforward_layernorm", "post_ffw_norm"},
    };
    if (const auto it = globals.find(hf); it != globals.end()) return it->second;
    static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
    std::smatch match;
    if (std::regex_match(hf, match, layer)) {
        const std::string part = match[2].str();
        const bool gemma_norm = architecture == Architecture::Gemma3 && gemma_norms.contains(part);
        const auto& names = gemma_norm ? gemma_norms : per_layer;
        if (const auto it = names.find(part); it != names.end())
            return "blk." + match[1].str() + "." + it->second + "." + match[3].str();
    }
    return hf;
}

}  // namespace

Weights load_weights(const safetensors::Checkpoint& checkpoint, Architecture architecture) {
    Weights weights(checkpoint.path());
    for (const auto& info : checkpoint.tensors()) {
        WeightView view{info.type, {}, info.data.data()};
        for (const auto dim : info.shape) view.shape.push_back(static_cast<std::int64_t>(dim));
        weights.add(gguf_name(info.name, architecture), std::move(view));
    }
    return weights;
}

}  // namespace kindred::model
