#include "formats/peft_adapter.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/half.h"
#include "core/json.h"
#include "formats/safetensors.h"

namespace kindred::peft {
namespace {

using nlohmann::json;

constexpr std::string_view kKeyPrefix = "base_model.model.model.layers.";
constexpr std::string_view kConfigFile = "adapter_config.json";
constexpr std::string_view kWeightsFile = "adapter_model.safetensors";
// adapter_config.json is about 1 KiB; this only bounds what a hostile file can make us read.
constexpr std::uintmax_t kMaxConfigBytes = 1u << 20;

bool is_expert_module(std::string_view module) { return module == kExpertsOuter || module == kExpertsNested; }

std::string_view parent_of(std::string_view module) {
    return module == "gate_proj" || module == "up_proj" || module == "down_proj" || is_expert_module(module) ? "mlp"
                                                                                                           : "self_attn";
}

bool is_lora_module(std::string_view module) {
    return std::find(std::begin(kLoraModules), std::end(kLoraModules), module) != std::end(kLoraModules);
}

// Splits off the text before the next '.', advancing `rest` past it.
std::string_view next_part(std::string_view& rest) {
    const auto dot = rest.find('.');
    const std::string_view part = rest.substr(0, dot);
    rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
    return part;
}

std::vector<float> to_fp32(const safetensors::TensorInfo& info, const std::string& path) {
    const std::uint64_t count = info.element_count();
    std::vector<float> out(count);
    const std::uint8_t* bytes = info.data.data();
    switch (info.type) {
        case DType::F32:
            std::memcpy(out.data(), bytes, count * sizeof(float));
            break;
        case DType::F16:
        case DType::BF16:
            for (std::uint64_t i = 0; i < count; ++i) {
                std::uint16_t h;
                std::memcpy(&h, bytes + 2 * i, 2);
                out[i] = info.type == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
            }
            break;
        default:
            fail("{}: tensor '{}' has type {}; LoRA tensors must be F32, F16 or BF16", path, info.name,
                 dtype_name(info.type));
    }
    return out;
}

// The config fields that would change what the tensors mean; each must hold its neutral value.
void reject_unsupported(const json& config, const std::string& path) {
    const auto is_set = [&](const char* field) {
        const auto it = config.find(field);
        return it != config.end() && !it->is_null() && !(it->is_boolean() && !it->get<bool>()) &&
               !((it->is_object() || it->is_array()) && it->empty());
    };
    for (const char* field : {"use_dora", "fan_in_fan_out", "modules_to_save", "rank_pattern", "alpha_pattern",
                              "lora_bias", "trainable_token_indices", "layer_replication", "use_qalora"}) {
        if (is_set(field)) fail("{}: field '{}' is set; only plain LoRA is supported", path, field);
    }
    if (const auto it = config.find("bias"); it != config.end() && *it != "none") {
        fail("{}: field 'bias' is {}; only \"none\" is supported", path, it->dump());
    }
}

template <typename T>
T required(const json& config, const char* field, const std::string& path) {
    const auto it = config.find(field);
    if (it == config.end()) fail("{}: field '{}' is missing", path, field);
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        fail("{}: field '{}' has the wrong type ({})", path, field, it->dump());
    }
}

LoraConfig parse_config(const json& config, const std::string& path) {
    if (!config.is_object()) fail("{}: not a JSON object", path);
    if (const auto type = required<std::string>(config, "peft_type", path); type != "LORA") {
        fail("{}: field 'peft_type' is \"{}\"; only \"LORA\" is supported", path, type);
    }
    reject_unsupported(config, path);
    LoraConfig out;
    const auto r = required<std::int64_t>(config, "r", path);
    if (r <= 0 || r > 65536) fail("{}: field 'r' is {}; expected 1..65536", path, r);
    out.r = static_cast<std::uint32_t>(r);
    out.lora_alpha = required<double>(config, "lora_alpha", path);
    if (!std::isfinite(out.lora_alpha)) fail("{}: field 'lora_alpha' is not finite", path);
    if (config.contains("lora_dropout")) out.lora_dropout = required<double>(config, "lora_dropout", path);
    if (config.contains("use_rslora")) out.use_rslora = required<bool>(config, "use_rslora", path);
    if (const auto it = config.find("base_model_name_or_path"); it != config.end() && !it->is_null()) {
        out.base_model = required<std::string>(config, "base_model_name_or_path", path);
    }
    if (const auto parameters = config.find("target_parameters"); parameters != config.end() && !parameters->is_null()) {
        if (!parameters->is_array()) fail("{}: field 'target_parameters' must be a list of parameter names", path);
        for (const auto& parameter : *parameters) {
            const auto* known = std::find(std::begin(kExpertParameters), std::end(kExpertParameters),
                                          parameter.is_string() ? parameter.get<std::string>() : std::string());
            if (known == std::end(kExpertParameters))
                fail("{}: field 'target_parameters' names {}; supported: mlp.experts.gate_up_proj, mlp.experts.down_proj",
                     path, parameter.dump());
            if (std::find(out.target_parameters.begin(), out.target_parameters.end(), *known) != out.target_parameters.end())
                fail("{}: field 'target_parameters' lists {} twice", path, parameter.dump());
            out.target_parameters.emplace_back(*known);
        }
    }
    const auto targets = config.find("target_modules");
    const bool no_modules = targets == config.end() || targets->is_null();
    // An adapter on the expert stacks alone may leave target_modules null; its layers_to_transform still counts.
    if (!no_modules || out.target_parameters.empty()) {
        if (no_modules || !targets->is_array()) {
            fail("{}: field 'target_modules' must be a list of module names (a regex string is not supported)",
                 path);
        }
        for (const auto& module : *targets) {
            if (!module.is_string() || !is_lora_module(module.get<std::string>())) {
                fail("{}: field 'target_modules' names {}; supported: q/k/v/o_proj, gate/up/down_proj", path,
                     module.dump());
            }
            out.target_modules.push_back(module.get<std::string>());
        }
    }
    if (const auto layers = config.find("layers_to_transform"); layers != config.end() && !layers->is_null()) {
        const json list = layers->is_array() ? *layers : json::array({*layers});
        for (const auto& layer : list) {
            if (!layer.is_number_unsigned() || layer.get<std::uint64_t>() > 1u << 20)
                fail("{}: field 'layers_to_transform' must be a layer index or a list of them, got {}", path,
                     layers->dump());
            out.layers_to_transform.push_back(layer.get<std::uint32_t>());
        }
        std::sort(out.layers_to_transform.begin(), out.layers_to_transform.end());
        if (std::adjacent_find(out.layers_to_transform.begin(), out.layers_to_transform.end()) !=
            out.layers_to_transform.end())
            fail("{}: field 'layers_to_transform' lists a layer twice", path);
    }
    return out;
}

json config_json(const LoraConfig& config) {
    json out = json::object();
    out["peft_type"] = "LORA";
    out["task_type"] = "CAUSAL_LM";
    out["base_model_name_or_path"] = config.base_model.empty() ? json(nullptr) : json(config.base_model);
    out["r"] = config.r;
    out["lora_alpha"] = config.lora_alpha;
    out["lora_dropout"] = config.lora_dropout;
    out["use_rslora"] = config.use_rslora;
    out["target_modules"] = config.target_modules;
    if (!config.target_parameters.empty()) out["target_parameters"] = config.target_parameters;
    out["bias"] = "none";
    out["fan_in_fan_out"] = false;
    out["use_dora"] = false;
    out["modules_to_save"] = nullptr;
    out["init_lora_weights"] = true;
    out["inference_mode"] = true;
    out["layers_to_transform"] = config.layers_to_transform.empty() ? json(nullptr) : json(config.layers_to_transform);
    out["rank_pattern"] = json::object();
    out["alpha_pattern"] = json::object();
    return out;
}

}  // namespace

LoraKey parse_lora_key(std::string_view key) {
    const auto bad = [&](std::string_view why) -> LoraKey {
        fail("LoRA tensor key '{}': {} (expected base_model.model.model.layers.<i>.<self_attn|mlp>.<module>."
             "lora_<A|B>.weight)", key, why);
    };
    if (!key.starts_with(kKeyPrefix)) return bad("unexpected prefix");
    std::string_view rest = key.substr(kKeyPrefix.size());
    const std::string_view layer_text = next_part(rest);
    LoraKey out;
    const auto [end, ec] = std::from_chars(layer_text.data(), layer_text.data() + layer_text.size(), out.layer);
    if (layer_text.empty() || ec != std::errc{} || end != layer_text.data() + layer_text.size() ||
        (layer_text.size() > 1 && layer_text[0] == '0')) {
        return bad("layer index is not a number");
    }
    const std::string_view parent = next_part(rest);
    std::string module(next_part(rest));
    if (module == kExpertsOuter && rest.starts_with("base_layer.")) {
        module = kExpertsNested;
        next_part(rest);
    }
    if (!is_lora_module(module) && !is_expert_module(module)) return bad("unknown module");
    if (parent != parent_of(module)) return bad("module under the wrong parent");
    const std::string_view which = next_part(rest);
    if ((which != "lora_A" && which != "lora_B") || rest != "weight") return bad("not a lora_A/lora_B weight");
    out.module = std::move(module);
    out.is_a = which == "lora_A";
    return out;
}

std::string lora_key(const LoraKey& key) {
    return fmt::format("{}{}.{}.{}.lora_{}.weight", kKeyPrefix, key.layer, parent_of(key.module), key.module,
                       key.is_a ? 'A' : 'B');
}

void validate(const Adapter& adapter, const std::string& where) {
    struct Pair {
        const LoraTensor* a = nullptr;
        const LoraTensor* b = nullptr;
    };
    std::map<std::pair<std::uint32_t, std::string>, Pair> modules;
    const auto& targets = adapter.config.target_modules;
    for (const LoraTensor& tensor : adapter.tensors) {
        LoraKey key;
        try {
            key = parse_lora_key(tensor.name);
        } catch (const Error& e) {
            fail("{}: {}", where, e.what());
        }
        if (tensor.shape.size() != 2) fail("{}: tensor '{}' is not 2-D", where, tensor.name);
        // Division, not multiplication: a caller's shape must not be able to wrap around.
        if (tensor.values.empty() || tensor.shape[1] == 0 || tensor.values.size() % tensor.shape[1] != 0 ||
            tensor.values.size() / tensor.shape[1] != tensor.shape[0]) {
            fail("{}: tensor '{}' has {} values for shape [{}, {}]", where, tensor.name, tensor.values.size(),
                 tensor.shape[0], tensor.shape[1]);
        }
        const std::uint64_t rank = key.is_a ? tensor.shape[0] : tensor.shape[1];
        const bool experts = is_expert_module(key.module);
        // An expert stack's rank dimension holds r per expert.
        if (experts ? rank % adapter.config.r != 0 : rank != adapter.config.r) {
            fail("{}: tensor '{}' has shape [{}, {}], inconsistent with r = {}", where, tensor.name, tensor.shape[0],
                 tensor.shape[1], adapter.config.r);
        }
        if (experts) {
            (void)expert_parameter(adapter.config, key.module, fmt::format("{}: tensor '{}'", where, tensor.name));
        } else if (std::find(targets.begin(), targets.end(), key.module) == targets.end()) {
            fail("{}: tensor '{}' is for module {}, which target_modules does not list", where, tensor.name,
                 key.module);
        }
        const auto& layers = adapter.config.layers_to_transform;
        if (!layers.empty() && !std::binary_search(layers.begin(), layers.end(), key.layer)) {
            fail("{}: tensor '{}' is for layer {}, which layers_to_transform does not list", where, tensor.name,
                 key.layer);
        }
        Pair& pair = modules[{key.layer, key.module}];
        const LoraTensor*& slot = key.is_a ? pair.a : pair.b;
        if (slot != nullptr) fail("{}: tensor '{}' appears twice", where, tensor.name);
        slot = &tensor;
    }
    for (const auto& [id, pair] : modules) {
        if (pair.a == nullptr || pair.b == nullptr) {
            fail("{}: layer {} {} has lora_{} but no lora_{}", where, id.first, id.second, pair.a ? 'A' : 'B',
                 pair.a ? 'B' : 'A');
        }
        if (is_expert_module(id.second) && pair.a->shape[0] != pair.b->shape[1])
            fail("{}: layer {} {} has lora_A [{}, {}] and lora_B [{}, {}]: r · experts differ", where, id.first,
                 id.second, pair.a->shape[0], pair.a->shape[1], pair.b->shape[0], pair.b->shape[1]);
    }
}

const std::string& expert_parameter(const LoraConfig& config, std::string_view module, const std::string& where) {
    const auto& listed = config.target_parameters;
    const std::size_t depth = module == kExpertsNested ? 1 : 0;  // ParamWrappers inside the outermost
    if (!is_expert_module(module) || listed.size() <= depth)
        fail("{} is for mlp.{}, which target_parameters ({} listed) does not reach", where, module, listed.size());
    return listed[listed.size() - 1 - depth];
}

void write_adapter(const std::string& directory, const Adapter& adapter) {
    validate(adapter, directory);
    std::error_code ec;
    std::filesystem::create_directories(directory, ec);
    if (ec) fail("{}: cannot create directory: {}", directory, ec.message());
    safetensors::Writer writer;
    writer.set_metadata("format", "pt");
    for (const LoraTensor& tensor : adapter.tensors) {
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(tensor.values.data());
        writer.add_tensor(tensor.name, DType::F32, tensor.shape,
                          std::span<const std::uint8_t>(bytes, tensor.values.size() * sizeof(float)));
    }
    // Weights first: a directory whose config exists is then always complete.
    writer.write(directory + "/" + std::string(kWeightsFile));
    write_file_atomically(directory + "/" + std::string(kConfigFile), config_json(adapter.config).dump(2) + "\n");
}

Adapter read_adapter(const std::string& directory) {
    const std::string config_path = directory + "/" + std::string(kConfigFile);
    const std::string weights_path = directory + "/" + std::string(kWeightsFile);
    for (const std::string& path : {config_path, weights_path}) {
        if (!std::filesystem::is_regular_file(path)) fail("{}: missing (not a PEFT adapter directory)", path);
    }
    Adapter out;
    out.config = parse_config(read_json_file(config_path, kMaxConfigBytes), config_path);
    const auto file = safetensors::File::open(weights_path);
    std::vector<const safetensors::TensorInfo*> infos;
    for (const auto& info : file.tensors()) infos.push_back(&info);
    std::sort(infos.begin(), infos.end(), [](const auto* x, const auto* y) { return x->name < y->name; });
    for (const auto* info : infos) {
        out.tensors.push_back({info->name, info->shape, to_fp32(*info, weights_path)});
    }
    validate(out, weights_path);
    return out;
}

}  // namespace kindred::peft
