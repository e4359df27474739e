#include "formats/model_config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"
#include "formats/gguf.h"

namespace kindred {
namespace {

using nlohmann::json;

// Sane upper bounds: far above any released model, low enough that tensor sizes computed from
// them by the loader cannot overflow or ask for absurd allocations.
constexpr std::int64_t kMaxWidth = 1 << 20;        // hidden, intermediate, head_dim
constexpr std::int64_t kMaxVocab = 1 << 24;
constexpr std::int64_t kMaxLayers = 4096;
constexpr std::int64_t kMaxHeads = 1 << 14;
constexpr std::int64_t kMaxExperts = 1 << 16;
constexpr std::int64_t kMaxContext = std::int64_t{1} << 32;

// A config.json object with typed, defaulted access; errors name the key and the file.
class HfKeys {
public:
    HfKeys(const json& object, std::string source) : object_(object), source_(std::move(source)) {}

    const json* find(const char* key) const {
        const auto it = object_.find(key);
        return it == object_.end() || it->is_null() ? nullptr : &*it;
    }
    bool has(const char* key) const { return find(key) != nullptr; }

    std::int64_t integer(const char* key) const {
        const json* value = find(key);
        if (value == nullptr) fail("{}: missing required key '{}'", source_, key);
        return as_integer(*value, key);
    }
    std::int64_t integer_or(const char* key, std::int64_t fallback) const {
        const json* value = find(key);
        return value == nullptr ? fallback : as_integer(*value, key);
    }
    double real_or(const char* key, double fallback) const {
        const json* value = find(key);
        if (value == nullptr) return fallback;
        if (!value->is_number()) fail("{}: key '{}' is {}, expected a number", source_, key, value->dump());
        return value->get<double>();
    }
    bool boolean_or(const char* key, bool fallback) const {
        const json* value = find(key);
        if (value == nullptr) return fallback;
        if (!value->is_boolean()) fail("{}: key '{}' is {}, expected true or false", source_, key, value->dump());
        return value->get<bool>();
    }
    std::string string_or(const char* key, const std::string& fallback) const {
        const json* value = find(key);
        if (value == nullptr) return fallback;
        if (!value->is_string()) fail("{}: key '{}' is {}, expected a string", source_, key, value->dump());
        return value->get<std::string>();
    }
    const json* object(const char* key) const {
        const json* value = find(key);
        if (value != nullptr && !value->is_object()) {
            fail("{}: key '{}' is {}, expected an object", source_, key, value->dump());
        }
        return value;
    }
    const std::string& source() const { return source_; }

private:
    std::int64_t as_integer(const json& value, const char* key) const {
        if (value.is_number_integer()) {
            if (value.is_number_unsigned() && value.get<std::uint64_t>() > INT64_MAX) {
                fail("{}: key '{}' is {}, too large", source_, key, value.dump());
            }
            return value.get<std::int64_t>();
        }
        // Some configs write whole numbers as floats ("max_position_embeddings": 4096.0).
        if (value.is_number_float()) {
            const double real = value.get<double>();
            if (std::floor(real) == real && std::fabs(real) < 9.0e15) return static_cast<std::int64_t>(real);
        }
        fail("{}: key '{}' is {}, expected an integer", source_, key, value.dump());
    }
    const json& object_;
    std::string source_;
};

// transformers' class defaults for the keys a config.json may leave out.
struct FamilyDefaults {
    std::optional<std::int64_t> num_kv_heads;  // nullopt: same as num_attention_heads
    std::optional<std::int64_t> head_dim;      // nullopt: hidden_size / num_attention_heads
    std::int64_t context_length;
    double rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings;
    bool attention_bias;
};

FamilyDefaults family_defaults(Architecture architecture) {
    switch (architecture) {
        case Architecture::Llama: return {std::nullopt, std::nullopt, 2048, 1e-6, 10000.0, false, false};
        case Architecture::Qwen3: return {32, 128, 32768, 1e-6, 10000.0, false, false};
        case Architecture::Qwen3Moe: return {4, std::nullopt, 32768, 1e-6, 10000.0, false, false};
        case Architecture::GptOss: return {8, 64, 131072, 1e-5, 150000.0, false, true};
        case Architecture::Gemma3: return {4, 256, 131072, 1e-6, 1000000.0, true, false};
    }
    fail("unknown architecture");
}

RopeScaling parse_rope_scaling(const json& params, std::int64_t context_length, const std::string& where) {
    const HfKeys keys(params, where);
    RopeScaling scaling;
    const std::string type = keys.string_or("rope_type", keys.string_or("type", "default"));
    if (keys.real_or("partial_rotary_factor", 1.0) != 1.0) fail("{}: partial_rotary_factor is not supported", where);
    if (type == "default") return scaling;
    if (!keys.has("factor")) fail("{}: rope type '{}' needs 'factor'", where, type);
    scaling.factor = keys.real_or("factor", 1.0);
    if (type == "linear") {
        scaling.type = RopeScalingType::Linear;
    } else if (type == "llama3") {
        scaling.type = RopeScalingType::Llama3;
        scaling.low_freq_factor = keys.real_or("low_freq_factor", scaling.low_freq_factor);
        scaling.high_freq_factor = keys.real_or("high_freq_factor", scaling.high_freq_factor);
        scaling.original_max_position_embeddings = keys.integer_or("original_max_position_embeddings", context_length);
    } else if (type == "yarn") {
        scaling.type = RopeScalingType::Yarn;
        scaling.beta_fast = keys.real_or("beta_fast", scaling.beta_fast);
        scaling.beta_slow = keys.real_or("beta_slow", scaling.beta_slow);
        scaling.truncate = keys.boolean_or("truncate", true);
        scaling.attention_factor = keys.real_or("attention_factor", 0.0);
        scaling.original_max_position_embeddings = keys.integer_or("original_max_position_embeddings", context_length);
        if (keys.has("mscale") || keys.has("mscale_all_dim")) fail("{}: yarn mscale is not supported", where);
    } else {
        fail("{}: rope type '{}' is not supported (default, linear, llama3, yarn)", where, type);
    }
    return scaling;
}

LayerAttention parse_layer_type(const json& value, const std::string& source) {
    if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        if (text == "full_attention" || text == "attention") return LayerAttention::Full;
        if (text == "sliding_attention") return LayerAttention::Sliding;
    }
    fail("{}: layer_types entry {} is not supported (full_attention, sliding_attention)", source, value.dump());
}

// Every `pattern`-th layer is full attention, the others slide (gemma3's and gpt-oss's layout).
std::vector<LayerAttention> periodic_layers(std::int64_t num_layers, std::int64_t pattern) {
    std::vector<LayerAttention> types;
    for (std::int64_t i = 0; i < num_layers; ++i) {
        types.push_back((i + 1) % pattern == 0 ? LayerAttention::Full : LayerAttention::Sliding);
    }
    return types;
}

ModelConfig parse_hf_text(const json& object, Architecture architecture, const std::string& source,
                          std::optional<bool> tie_override) {
    const HfKeys keys(object, source);
    const FamilyDefaults defaults = family_defaults(architecture);
    ModelConfig config;
    config.architecture = architecture;
    config.vocab_size = keys.integer("vocab_size");
    config.hidden_size = keys.integer("hidden_size");
    config.intermediate_size = keys.integer("intermediate_size");
    config.num_layers = keys.integer("num_hidden_layers");
    // Checked before anything is sized by it; validate() checks the rest.
    if (config.num_layers <= 0 || config.num_layers > kMaxLayers) {
        fail("{}: num_hidden_layers = {} is outside [1, {}]", source, config.num_layers, kMaxLayers);
    }
    config.num_heads = keys.integer("num_attention_heads");
    config.num_kv_heads = keys.integer_or("num_key_value_heads", defaults.num_kv_heads.value_or(config.num_heads));
    if (config.num_heads <= 0) fail("{}: num_attention_heads must be positive", source);
    config.head_dim = keys.integer_or("head_dim", defaults.head_dim.value_or(config.hidden_size / config.num_heads));
    config.context_length = keys.integer_or("max_position_embeddings", defaults.context_length);
    config.rms_norm_eps = keys.real_or("rms_norm_eps", defaults.rms_norm_eps);
    config.tie_word_embeddings = tie_override.value_or(keys.boolean_or("tie_word_embeddings", defaults.tie_word_embeddings));
    config.attention_bias = keys.boolean_or("attention_bias", defaults.attention_bias);
    if (keys.boolean_or("mlp_bias", false)) fail("{}: mlp_bias is not supported", source);
    if (keys.real_or("partial_rotary_factor", 1.0) != 1.0) fail("{}: partial_rotary_factor is not supported", source);

    const bool gemma = architecture == Architecture::Gemma3;
    // Gemma3's MLP reads hidden_activation; a stray hidden_act in its config is ignored, as there.
    const std::string activation =
        gemma ? keys.string_or("hidden_activation", "gelu_pytorch_tanh") : keys.string_or("hidden_act", "silu");
    if (activation == "silu") {
        config.activation = Activation::Silu;
    } else if (activation == "gelu_pytorch_tanh" || activation == "gelu_tanh") {
        config.activation = Activation::GeluTanh;
    } else {
        fail("{}: activation '{}' is not supported (silu, gelu_pytorch_tanh)", source, activation);
    }

    // RoPE: the current format nests everything in rope_parameters (per layer type for gemma3);
    // the older one has rope_theta and rope_scaling beside each other. rope_scaling wins, as in
    // transformers, and a theta inside the parameters wins over the top-level one.
    json params = json::object();
    json local_params = json::object();
    if (const json* current = keys.object("rope_parameters")) {
        if (current->contains("full_attention") || current->contains("sliding_attention")) {
            if (current->contains("full_attention") && current->at("full_attention").is_object()) {
                params = current->at("full_attention");
            }
            if (current->contains("sliding_attention") && current->at("sliding_attention").is_object()) {
                local_params = current->at("sliding_attention");
            }
        } else {
            params = *current;
        }
    } else if (architecture == Architecture::GptOss) {
        params = {{"rope_type", "yarn"}, {"factor", 32.0}, {"beta_fast", 32.0}, {"beta_slow", 1.0},
                  {"truncate", false}, {"original_max_position_embeddings", 4096}};
    }
    // transformers merges a legacy rope_scaling into gemma3's full-attention parameters and
    // replaces the parameters with it elsewhere.
    if (const json* legacy = keys.object("rope_scaling")) {
        if (gemma) {
            params.update(*legacy);
        } else {
            params = *legacy;
        }
    }
    const std::string rope_where = source + ": rope parameters";
    config.rope_scaling = parse_rope_scaling(params, config.context_length, rope_where);
    config.rope_theta = HfKeys(params, rope_where).real_or("rope_theta", keys.real_or("rope_theta", defaults.rope_theta));
    if (gemma) {
        const HfKeys local(local_params, source + ": sliding_attention rope parameters");
        if (parse_rope_scaling(local_params, config.context_length, local.source()).type != RopeScalingType::None) {
            fail("{}: rope scaling on sliding layers is not supported", source);
        }
        config.rope_local_theta = local.real_or("rope_theta", keys.real_or("rope_local_base_freq", 10000.0));
    }

    // Layer types: listed, or derived the way each family's config class derives them.
    if (const json* listed = keys.find("layer_types")) {
        if (!listed->is_array()) fail("{}: key 'layer_types' is not an array", source);
        for (const auto& entry : *listed) config.layer_types.push_back(parse_layer_type(entry, source));
    } else if (architecture == Architecture::GptOss) {
        config.layer_types = periodic_layers(config.num_layers, 2);
    } else if (gemma) {
        const std::int64_t pattern = keys.integer_or("sliding_window_pattern", 6);
        if (pattern <= 0 || pattern > kMaxLayers) fail("{}: sliding_window_pattern {} is out of range", source, pattern);
        config.layer_types = periodic_layers(config.num_layers, pattern);
    } else if (architecture == Architecture::Qwen3 && keys.boolean_or("use_sliding_window", false) &&
               keys.has("sliding_window")) {
        const std::int64_t first_sliding = keys.integer_or("max_window_layers", 28);
        for (std::int64_t i = 0; i < config.num_layers; ++i) {
            config.layer_types.push_back(i >= first_sliding ? LayerAttention::Sliding : LayerAttention::Full);
        }
    } else {
        if (architecture == Architecture::Qwen3Moe && keys.boolean_or("use_sliding_window", false)) {
            fail("{}: use_sliding_window is not supported for qwen3_moe", source);
        }
        config.layer_types.assign(static_cast<std::size_t>(config.num_layers), LayerAttention::Full);
    }
    const bool slides = std::find(config.layer_types.begin(), config.layer_types.end(), LayerAttention::Sliding) !=
                        config.layer_types.end();
    if (slides) {
        const std::int64_t fallback = architecture == Architecture::GptOss ? 128 : 4096;
        config.sliding_window = keys.integer_or("sliding_window", fallback);
        if (gemma && keys.boolean_or("use_bidirectional_attention", false)) {
            fail("{}: use_bidirectional_attention is not supported", source);
        }
    }

    switch (architecture) {
        case Architecture::Llama:
            break;
        case Architecture::Qwen3:
            config.qk_norm = true;
            break;
        case Architecture::Qwen3Moe:
            config.qk_norm = true;
            // transformers 5 writes num_local_experts (its attribute map); hub configs num_experts.
            config.num_experts = keys.integer_or("num_local_experts", keys.integer_or("num_experts", 128));
            config.num_experts_per_token = keys.integer_or("num_experts_per_tok", 8);
            config.moe_intermediate_size = keys.integer_or("moe_intermediate_size", 768);
            config.norm_topk_prob = keys.boolean_or("norm_topk_prob", false);
            config.decoder_sparse_step = keys.integer_or("decoder_sparse_step", 1);
            if (const json* dense = keys.find("mlp_only_layers"); dense != nullptr && !dense->is_null()) {
                if (!dense->is_array()) fail("{}: key 'mlp_only_layers' is not an array", source);
                for (const json& layer : *dense) {
                    if (!layer.is_number_integer()) fail("{}: key 'mlp_only_layers' holds a non-integer", source);
                    config.mlp_only_layers.push_back(layer.get<std::int64_t>());
                }
            }
            break;
        case Architecture::GptOss:
            config.attention_sinks = true;
            config.num_experts = keys.integer_or("num_local_experts", keys.integer_or("num_experts", 128));
            config.num_experts_per_token = keys.integer_or("num_experts_per_tok", keys.integer_or("experts_per_token", 4));
            config.moe_intermediate_size = config.intermediate_size;  // experts are intermediate_size wide
            config.norm_topk_prob = true;  // softmax over the selected logits = normalised top-k
            config.swiglu_limit = keys.real_or("swiglu_limit", 7.0);
            config.swiglu_alpha = keys.real_or("swiglu_alpha", 1.702);
            break;
        case Architecture::Gemma3:
            config.qk_norm = true;
            config.norm_weight_offset = true;
            config.scale_embeddings = true;
            config.query_pre_attn_scalar = keys.real_or("query_pre_attn_scalar", 256.0);
            config.final_logit_softcapping = keys.real_or("final_logit_softcapping", 0.0);
            if (keys.has("attn_logit_softcapping")) fail("{}: attn_logit_softcapping is not supported", source);
            break;
    }
    if (config.num_experts != 0) {
        // Named by the keys the file spells (validate() would only name the fields).
        const char* experts_key = keys.has("num_local_experts") ? "num_local_experts" : "num_experts";
        if (config.num_experts < 1 || config.num_experts > kMaxExperts)
            fail("{}: {} = {} is outside [1, {}]", source, experts_key, config.num_experts, kMaxExperts);
        if (config.num_experts_per_token < 1 || config.num_experts_per_token > config.num_experts)
            fail("{}: num_experts_per_tok = {} is outside [1, {}] ({})", source, config.num_experts_per_token,
                 config.num_experts, experts_key);
    }
    return config;
}

const char* const kHfTypes = "llama, qwen3, qwen3_moe, gpt_oss, gemma3_text, gemma3";

}  // namespace

const char* architecture_name(Architecture architecture) {
    switch (architecture) {
        case Architecture::Llama: return "llama";
        case Architecture::Qwen3: return "qwen3";
        case Architecture::Qwen3Moe: return "qwen3_moe";
        case Architecture::GptOss: return "gpt_oss";
        case Architecture::Gemma3: return "gemma3";
    }
    return "unknown";
}

bool ModelConfig::moe_layer(std::int64_t layer) const {
    if (num_experts == 0) return false;
    if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
    return (layer + 1) % decoder_sparse_step == 0;
}

double ModelConfig::attention_scale() const {
    return 1.0 / std::sqrt(query_pre_attn_scalar > 0 ? query_pre_attn_scalar : static_cast<double>(head_dim));
}

void ModelConfig::validate(const std::string& source) const {
    auto in_range = [&](const char* field, std::int64_t value, std::int64_t low, std::int64_t high) {
        if (value < low || value > high) fail("{}: {} = {} is outside [{}, {}]", source, field, value, low, high);
    };
    in_range("vocab_size", vocab_size, 1, kMaxVocab);
    in_range("hidden_size", hidden_size, 1, kMaxWidth);
    in_range("intermediate_size", intermediate_size, 1, kMaxWidth);
    in_range("num_layers", num_layers, 1, kMaxLayers);
    in_range("num_heads", num_heads, 1, kMaxHeads);
    in_range("num_kv_heads", num_kv_heads, 1, num_heads);
    in_range("head_dim", head_dim, 2, kMaxWidth);
    in_range("context_length", context_length, 1, kMaxContext);
    if (num_heads % num_kv_heads != 0) {
        fail("{}: num_heads {} is not a multiple of num_kv_heads {}", source, num_heads, num_kv_heads);
    }
    if (head_dim % 2 != 0) fail("{}: head_dim {} is odd; rotary embedding rotates pairs", source, head_dim);
    if (!(rms_norm_eps > 0) || !std::isfinite(rms_norm_eps)) fail("{}: rms_norm_eps {} must be positive", source, rms_norm_eps);
    if (!(rope_theta > 1) || !std::isfinite(rope_theta)) fail("{}: rope_theta {} must be above 1", source, rope_theta);
    if (rope_local_theta != 0 && (!(rope_local_theta > 1) || !std::isfinite(rope_local_theta))) {
        fail("{}: rope_local_theta {} must be above 1", source, rope_local_theta);
    }
    if (rope_scaling.type != RopeScalingType::None) {
        if (!(rope_scaling.factor > 0) || !std::isfinite(rope_scaling.factor)) {
            fail("{}: rope scaling factor {} must be positive", source, rope_scaling.factor);
        }
        if (rope_scaling.type == RopeScalingType::Llama3 || rope_scaling.type == RopeScalingType::Yarn) {
            in_range("rope original_max_position_embeddings", rope_scaling.original_max_position_embeddings, 1, kMaxContext);
        }
        if (rope_scaling.type == RopeScalingType::Llama3 && !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor)) {
            fail("{}: llama3 rope high_freq_factor {} must exceed low_freq_factor {}", source,
                 rope_scaling.high_freq_factor, rope_scaling.low_freq_factor);
        }
    }
    if (layer_types.size() != static_cast<std::size_t>(num_layers)) {
        fail("{}: layer_types has {} entries for {} layers", source, layer_types.size(), num_layers);
    }
    const bool slides = std::find(layer_types.begin(), layer_types.end(), LayerAttention::Sliding) != layer_types.end();
    if (slides) in_range("sliding_window", sliding_window, 1, kMaxContext);

    const bool moe = architecture == Architecture::Qwen3Moe || architecture == Architecture::GptOss;
    if (moe) {
        in_range("num_experts", num_experts, 1, kMaxExperts);
        in_range("num_experts_per_token", num_experts_per_token, 1, num_experts);
        in_range("moe_intermediate_size", moe_intermediate_size, 1, kMaxWidth);
        in_range("decoder_sparse_step", decoder_sparse_step, 1, kMaxLayers);
        for (const std::int64_t layer : mlp_only_layers) in_range("mlp_only_layers entry", layer, 0, num_layers - 1);
    } else if (num_experts != 0 || num_experts_per_token != 0) {
        fail("{}: {} is a dense architecture but has {} experts", source, architecture_name(architecture), num_experts);
    }
    if (swiglu_limit < 0 || query_pre_attn_scalar < 0 || final_logit_softcapping < 0) {
        fail("{}: swiglu_limit, query_pre_attn_scalar and final_logit_softcapping must not be negative", source);
    }
}

ModelConfig model_config_from_hf(const json& config, const std::string& source) {
    if (!config.is_object()) fail("{}: config is not a JSON object", source);
    const HfKeys keys(config, source);
    const std::string model_type = keys.string_or("model_type", "");
    if (model_type.empty()) fail("{}: missing required key 'model_type'", source);
    ModelConfig result;
    if (model_type == "llama") {
        result = parse_hf_text(config, Architecture::Llama, source, std::nullopt);
    } else if (model_type == "qwen3") {
        result = parse_hf_text(config, Architecture::Qwen3, source, std::nullopt);
    } else if (model_type == "qwen3_moe") {
        result = parse_hf_text(config, Architecture::Qwen3Moe, source, std::nullopt);
    } else if (model_type == "gpt_oss") {
        result = parse_hf_text(config, Architecture::GptOss, source, std::nullopt);
    } else if (model_type == "gemma3_text") {
        result = parse_hf_text(config, Architecture::Gemma3, source, std::nullopt);
    } else if (model_type == "gemma3") {
        const json* text = keys.object("text_config");
        if (text == nullptr) fail("{}: missing required key 'text_config'", source);
        const std::string text_type = HfKeys(*text, source).string_or("model_type", "gemma3_text");
        if (text_type != "gemma3_text") fail("{}: text_config has model_type '{}', expected gemma3_text", source, text_type);
        // The wrapper's flag decides whether the LM head is tied (Gemma3ForConditionalGeneration).
        const std::optional<bool> tie = keys.has("tie_word_embeddings")
                                            ? std::optional<bool>(keys.boolean_or("tie_word_embeddings", true))
                                            : std::nullopt;
        result = parse_hf_text(*text, Architecture::Gemma3, source + ": text_config", tie);
    } else {
        fail("{}: model_type '{}' is not supported ({})", source, model_type, kHfTypes);
    }
    result.validate(source);
    return result;
}

ModelConfig model_config_from_hf_file(const std::string& path) {
    // Real config.json files are a few kilobytes; the bound only stops a wrong path to a huge file.
    constexpr std::uintmax_t kMaxConfigBytes = 16ull << 20;
    return model_config_from_hf(read_json_file(path, kMaxConfigBytes), path);
}

// ------------------------------------------------------------------------------------------------
// GGUF

namespace {

// llama.cpp's general.architecture of each family (what its converter writes for the HF model).
constexpr std::array<std::pair<Architecture, const char*>, 5> kGgufArchitectures{{{Architecture::Llama, "llama"},
                                                                                   {Architecture::Qwen3, "qwen3"},
                                                                                   {Architecture::Qwen3Moe, "qwen3moe"},
                                                                                   {Architecture::GptOss, "gpt-oss"},
                                                                                   {Architecture::Gemma3, "gemma3"}}};

}  // namespace

const char* gguf_architecture_name(Architecture architecture) {
    for (const auto& [known, name] : kGgufArchitectures)
        if (known == architecture) return name;
    return "unknown";
}

namespace {

ModelConfig parse_gguf(const gguf::Metadata& metadata) {
    const std::string arch = metadata.string("general.architecture");
    ModelConfig config;
    const auto known = std::find_if(kGgufArchitectures.begin(), kGgufArchitectures.end(),
                                    [&](const auto& entry) { return arch == entry.second; });
    if (known == kGgufArchitectures.end()) {
        fail("general.architecture '{}' is not supported (llama, qwen3, qwen3moe, gpt-oss, gemma3)", arch);
    }
    config.architecture = known->first;
    const auto key = [&](std::string_view name) { return arch + "." + std::string(name); };
    const auto has = [&](std::string_view name) { return metadata.contains(key(name)); };
    const auto integer = [&](std::string_view name) { return metadata.integer(key(name)); };
    const auto integer_or = [&](std::string_view name, std::int64_t fallback) {
        return has(name) ? integer(name) : fallback;
    };
    const auto real_or = [&](std::string_view name, double fallback) {
        return has(name) ? metadata.real(key(name)) : fallback;
    };

    config.hidden_size = integer("embedding_length");
    config.num_layers = integer("block_count");
    if (config.num_layers <= 0 || config.num_layers > kMaxLayers) {
        fail("{} = {} is outside [1, {}]", key("block_count"), config.num_layers, kMaxLayers);
    }
    config.context_length = integer("context_length");
    config.num_heads = integer("attention.head_count");
    config.num_kv_heads = integer_or("attention.head_count_kv", config.num_heads);
    if (config.num_heads <= 0) fail("{} must be positive", key("attention.head_count"));
    config.head_dim = integer_or("attention.key_length", config.hidden_size / config.num_heads);
    if (has("attention.value_length") && integer("attention.value_length") != config.head_dim) {
        fail("{} differs from the key length {}", key("attention.value_length"), config.head_dim);
    }
    if (has("rope.dimension_count") && integer("rope.dimension_count") != config.head_dim) {
        fail("{} = {} rotates part of a {}-wide head, which is not supported", key("rope.dimension_count"),
             integer("rope.dimension_count"), config.head_dim);
    }
    config.rms_norm_eps = metadata.real(key("attention.layer_norm_rms_epsilon"));
    config.rope_theta = real_or("rope.freq_base", 10000.0);  // llama.cpp's default
    if (has("vocab_size")) {
        config.vocab_size = integer("vocab_size");
    } else if (metadata.contains("tokenizer.ggml.tokens")) {
        config.vocab_size = static_cast<std::int64_t>(metadata.array("tokenizer.ggml.tokens").items.size());
    } else {
        fail("neither {} nor tokenizer.ggml.tokens gives the vocabulary size", key("vocab_size"));
    }

    const std::string scaling = has("rope.scaling.type") ? metadata.string(key("rope.scaling.type")) : "none";
    if (scaling == "linear" || scaling == "yarn") {
        config.rope_scaling.type = scaling == "linear" ? RopeScalingType::Linear : RopeScalingType::Yarn;
        config.rope_scaling.factor = metadata.real(key("rope.scaling.factor"));
        if (scaling == "yarn") {
            config.rope_scaling.original_max_position_embeddings = integer("rope.scaling.original_context_length");
            config.rope_scaling.beta_fast = real_or("rope.scaling.yarn_beta_fast", 32.0);
            config.rope_scaling.beta_slow = real_or("rope.scaling.yarn_beta_slow", 1.0);
            // gpt-oss computes its yarn ranges without truncation (truncate: false in its config).
            config.rope_scaling.truncate = config.architecture != Architecture::GptOss;
        }
    } else if (scaling != "none") {
        fail("{} '{}' is not supported (none, linear, yarn)", key("rope.scaling.type"), scaling);
    }

    const bool moe = config.architecture == Architecture::Qwen3Moe || config.architecture == Architecture::GptOss;
    if (moe) {
        config.num_experts = integer("expert_count");
        config.num_experts_per_token = integer("expert_used_count");
        config.moe_intermediate_size = integer("expert_feed_forward_length");
        config.intermediate_size = integer_or("feed_forward_length", config.moe_intermediate_size);
        // llama.cpp always normalises the selected weights for both (qwen3moe passes norm_w = true;
        // gpt-oss takes the softmax over the selected logits).
        config.norm_topk_prob = has("expert_weights_norm") ? metadata.boolean(key("expert_weights_norm")) : true;
        if (config.num_experts < 1 || config.num_experts > kMaxExperts)
            fail("{} = {} is outside [1, {}]", key("expert_count"), config.num_experts, kMaxExperts);
        if (config.num_experts_per_token < 1 || config.num_experts_per_token > config.num_experts)
            fail("{} = {} is outside [1, {}] ({})", key("expert_used_count"), config.num_experts_per_token,
                 config.num_experts, key("expert_count"));
    } else {
        config.intermediate_size = integer("feed_forward_length");
    }

    // Sliding layers: an explicit pattern key when present, else llama.cpp's per-architecture one.
    std::int64_t pattern = 0;  // 0: no sliding layers
    if (config.architecture == Architecture::GptOss) pattern = 2;
    if (config.architecture == Architecture::Gemma3) pattern = 6;
    config.sliding_window = integer_or("attention.sliding_window", 0);
    if (config.sliding_window == 0) pattern = 0;
    const std::string pattern_key = key("attention.sliding_window_pattern");
    if (const gguf::Value* listed = metadata.find(pattern_key); listed != nullptr && listed->type() == gguf::ValueType::Array) {
        for (const gguf::Value& item : std::get<gguf::Array>(listed->storage).items) {
            const bool* sliding = std::get_if<bool>(&item.storage);
            if (sliding == nullptr) fail("{} must be an array of bools", pattern_key);
            config.layer_types.push_back(*sliding ? LayerAttention::Sliding : LayerAttention::Full);
        }
    } else {
        if (listed != nullptr) pattern = metadata.integer(pattern_key);
        if (pattern < 0 || pattern > kMaxLayers) fail("{} = {} is out of range", pattern_key, pattern);
        config.layer_types = pattern == 0
                                 ? std::vector<LayerAttention>(static_cast<std::size_t>(config.num_layers), LayerAttention::Full)
                                 : periodic_layers(config.num_layers, pattern);
    }
    if (std::find(config.layer_types.begin(), config.layer_types.end(), LayerAttention::Sliding) == config.layer_types.end()) {
        config.sliding_window = 0;
    }

    switch (config.architecture) {
        case Architecture::Llama:
            break;
        case Architecture::Qwen3:
        case Architecture::Qwen3Moe:
            config.qk_norm = true;
            break;
        case Architecture::GptOss:
            config.attention_sinks = true;
            config.attention_bias = true;
            config.swiglu_limit = 7.0;    // llama.cpp hardcodes gpt-oss's clamp and gate gain
            config.swiglu_alpha = 1.702;
            break;
        case Architecture::Gemma3:
            config.qk_norm = true;
            config.activation = Activation::GeluTanh;
            config.scale_embeddings = true;
            config.norm_weight_offset = false;  // the converter stored 1 + w (see the header)
            config.rope_local_theta = real_or("rope.freq_base_swa", 10000.0);
            // llama.cpp: the 62-layer (27B) model scales by hidden/heads, the others by head_dim.
            config.query_pre_attn_scalar = config.num_layers == 62 && config.num_heads > 0
                                               ? static_cast<double>(config.hidden_size / config.num_heads)
                                               : static_cast<double>(config.head_dim);
            config.final_logit_softcapping = real_or("final_logit_softcapping", 0.0);
            break;
    }
    return config;
}

}  // namespace

ModelConfig model_config_from_gguf(const gguf::Metadata& metadata, const std::string& source) {
    ModelConfig config;
    try {
        config = parse_gguf(metadata);
    } catch (const Error& error) {
        fail("{}: {}", source, error.what());
    }
    config.validate(source);
    return config;
}

ModelConfig model_config_from_gguf(const gguf::File& file) {
    ModelConfig config = model_config_from_gguf(file.metadata(), file.name());
    config.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
    return config;
}

}  // namespace kindred
