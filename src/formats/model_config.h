// formats/model_config.h — the one description of a decoder's hyperparameters, filled either
// from a Hugging Face config.json or from GGUF metadata, so that model/ never looks at a file.
// Field names follow the HF config; the per-family comments say which families use a field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kindred::gguf {
class Metadata;
class File;
}  // namespace kindred::gguf

namespace kindred {

enum class Architecture { Llama, Qwen3, Qwen3Moe, GptOss, Gemma3 };

enum class RopeScalingType { None, Linear, Llama3, Yarn };

struct RopeScaling {
    RopeScalingType type = RopeScalingType::None;
    double factor = 1.0;
    std::int64_t original_max_position_embeddings = 0;
    double low_freq_factor = 1.0;   // llama3
    double high_freq_factor = 4.0;  // llama3
    double beta_fast = 32.0;        // yarn
    double beta_slow = 1.0;         // yarn
    double attention_factor = 0.0;  // yarn mscale; 0 = derive from factor
    bool truncate = true;           // yarn (gpt-oss sets false)
};

enum class LayerAttention { Full, Sliding };

enum class Activation { Silu, GeluTanh };

struct ModelConfig {
    Architecture architecture = Architecture::Llama;
    std::int64_t vocab_size = 0;
    std::int64_t hidden_size = 0;
    std::int64_t intermediate_size = 0;
    std::int64_t num_layers = 0;
    std::int64_t num_heads = 0;
    std::int64_t num_kv_heads = 0;
    std::int64_t head_dim = 0;           // hidden_size / num_heads unless the config says otherwise
    std::int64_t context_length = 0;     // max_position_embeddings
    double rms_norm_eps = 1e-5;
    double rope_theta = 10000.0;
    double rope_local_theta = 0.0;       // gemma3: rope base of sliding layers (0 = same as rope_theta)
    RopeScaling rope_scaling;
    bool tie_word_embeddings = false;
    bool qk_norm = false;                // qwen3, qwen3_moe, gemma3: per-head RMSNorm on q and k
    bool attention_bias = false;         // gpt_oss: biases on q, k, v, o
    bool attention_sinks = false;        // gpt_oss: a learned sink logit per head
    Activation activation = Activation::Silu;
    double swiglu_limit = 0.0;           // gpt_oss clamps gate/up at this value (0 = no clamp)
    double swiglu_alpha = 0.0;           // gpt_oss gate: g * sigmoid(alpha * g) (0 = plain SiLU)
    // Mixture of experts (qwen3_moe, gpt_oss); num_experts == 0 means a dense MLP.
    std::int64_t num_experts = 0;
    std::int64_t num_experts_per_token = 0;
    std::int64_t moe_intermediate_size = 0;
    bool norm_topk_prob = false;
    // qwen3_moe: layer l is mixture-of-experts when it is not listed in mlp_only_layers and
    // (l + 1) is a multiple of decoder_sparse_step; the others are dense (intermediate_size wide).
    std::int64_t decoder_sparse_step = 1;
    std::vector<std::int64_t> mlp_only_layers;
    // Sliding-window attention: window size and, per layer, which kind of attention it uses.
    // layer_types always has num_layers entries; sliding_window is 0 when no layer slides.
    std::int64_t sliding_window = 0;
    std::vector<LayerAttention> layer_types;
    // gemma3 specifics.
    double query_pre_attn_scalar = 0.0;  // attention scale is query_pre_attn_scalar^-0.5 when set
    // RMSNorm multiplies by (1 + w). Describes the stored weights: true for HF gemma3, false for a
    // gemma3 GGUF, whose converter already added the 1 (transformers subtracts it when reading GGUF).
    bool norm_weight_offset = false;
    bool scale_embeddings = false;       // embeddings multiplied by sqrt(hidden_size)
    double final_logit_softcapping = 0.0;

    // Throws Error naming the offending field when the numbers cannot describe a decoder, or are
    // beyond sane bounds (so a hostile config cannot make the loader allocate absurd sizes).
    void validate(const std::string& source) const;
    // Softmax scale of attention logits: query_pre_attn_scalar^-0.5 when set, else head_dim^-0.5.
    double attention_scale() const;
    // Whether layer `layer`'s MLP is mixture-of-experts (see decoder_sparse_step); false for dense models.
    bool moe_layer(std::int64_t layer) const;
};

const char* architecture_name(Architecture architecture);  // "llama", "qwen3", ...
// llama.cpp's general.architecture for the family: "llama", "qwen3", "qwen3moe", "gpt-oss", "gemma3".
const char* gguf_architecture_name(Architecture architecture);

// Parses an HF config.json (`model_type` llama, qwen3, qwen3_moe, gpt_oss, gemma3_text, or gemma3
// with a `text_config`), in the current `rope_parameters` format or the older `rope_theta` /
// `rope_scaling` / `sliding_window_pattern` one. Keys that transformers defaults are defaulted to
// the same values; vocab_size, hidden_size, intermediate_size, num_hidden_layers and
// num_attention_heads are required. Settings the model code cannot honour (an unknown rope type,
// partial rotary, mlp_bias, ...) are errors rather than silently ignored. `source` names the file.
ModelConfig model_config_from_hf(const nlohmann::json& config, const std::string& source);
ModelConfig model_config_from_hf_file(const std::string& path);

// Fills the same struct from GGUF metadata (`general.architecture` llama, qwen3, qwen3moe, gpt-oss,
// gemma3 and the `<arch>.*` keys llama.cpp writes; facts llama.cpp hardcodes per architecture,
// such as gemma3's sliding pattern of 6 and local rope base 10000, are filled in the same way).
// GGUF has no tied-embeddings flag: a model ties when it has no output.weight tensor, which the
// metadata cannot show, so this leaves tie_word_embeddings false; the File overload sets it.
// llama3-style rope scaling lives in a rope_freqs.weight tensor in GGUF, not in metadata.
ModelConfig model_config_from_gguf(const gguf::Metadata& metadata, const std::string& source);
ModelConfig model_config_from_gguf(const gguf::File& file);

}  // namespace kindred
