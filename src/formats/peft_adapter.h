// formats/peft_adapter.h — LoRA adapters as Hugging Face PEFT stores them: a directory holding
// adapter_config.json and adapter_model.safetensors, the form `PeftModel.from_pretrained` loads
// and the form other tools (llama.cpp's converter, vLLM) accept. Kindred's trainer writes its
// adapters through here and can resume from or evaluate any plain PEFT LoRA adapter.
//
// Only plain LoRA on the seven decoder projections and on mixture-of-experts stacks is accepted;
// features that would change what the tensors mean (DoRA, biases, extra saved modules, per-module
// ranks, transposed weights) are refused with an Error naming the config field, never silently
// ignored.
//
// Expert stacks (Qwen3-MoE, gpt-oss) are PEFT's target_parameters "mlp.experts.gate_up_proj" and
// "mlp.experts.down_proj": one ParamWrapper per parameter, nested in list order with the last
// outermost, so the tensors of the last listed parameter sit under mlp.experts and the one
// before under mlp.experts.base_layer. A is [experts · r, in], B [out, r · experts]. Both orders
// of the list are read; Kindred writes gate_up first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::peft {

// The projections a decoder layer exposes to LoRA, in PEFT's (Hugging Face) module names.
inline constexpr std::string_view kLoraModules[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};

// The module paths of expert-stack adapters (see above): the outer and the nested ParamWrapper.
inline constexpr std::string_view kExpertsOuter = "experts";
inline constexpr std::string_view kExpertsNested = "experts.base_layer";
// The target_parameters Kindred reads.
inline constexpr std::string_view kExpertParameters[] = {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"};

struct LoraKey {
    std::uint32_t layer = 0;
    std::string module;  // one of kLoraModules, kExpertsOuter or kExpertsNested
    bool is_a = true;    // lora_A ([r, in]) or lora_B ([out, r])
    friend bool operator==(const LoraKey&, const LoraKey&) = default;
};

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" <-> {3, "q_proj", A} and
// "base_model.model.model.layers.3.mlp.experts.base_layer.lora_B.weight" <-> {3, "experts.base_layer", B}: the
// names save_pretrained writes (adapter name "default" removed). Parsing throws Error naming the
// key when it is not of that form, the module is unknown or sits under the wrong parent
// (attention projections under self_attn, the MLP's under mlp).
LoraKey parse_lora_key(std::string_view key);
std::string lora_key(const LoraKey& key);

struct LoraTensor {
    std::string name;                  // PEFT key
    std::vector<std::uint64_t> shape;  // [rows, cols], PyTorch order: A is [r, in], B is [out, r]
    std::vector<float> values;         // row-major, rows * cols
};

struct LoraConfig {
    std::string base_model;  // base_model_name_or_path; empty writes null
    std::uint32_t r = 8;
    double lora_alpha = 16.0;
    double lora_dropout = 0.0;
    bool use_rslora = false;  // scale alpha / sqrt(r) instead of alpha / r
    std::vector<std::string> target_modules;
    std::vector<std::string> target_parameters;  // of kExpertParameters
    // PEFT's layers_to_transform: the layers that carry adapters, ascending; empty = every layer
    // (written as null). A single integer in the file reads as a list of one.
    std::vector<std::uint32_t> layers_to_transform;
};

// Which of config.target_parameters an expert module path (kExpertsOuter or kExpertsNested)
// adapts; Error naming `where` when the list has no such entry.
const std::string& expert_parameter(const LoraConfig& config, std::string_view module, const std::string& where);

struct Adapter {
    LoraConfig config;
    std::vector<LoraTensor> tensors;  // file order (sorted by key) when read
};

// Checks what both reader and writer require: every key parses, shapes are 2-D with A [r, in]
// and B [out, r] (expert stacks: A [experts · r, in], B [out, r · experts]), each module has both
// A and B with the same r, no key repeats, every module named by a key is in target_modules
// (expert stacks: in target_parameters) and, when layers_to_transform is given, its layer is
// listed there. Throws Error naming `where` and the key.
void validate(const Adapter& adapter, const std::string& where);

// Writes <directory>/adapter_model.safetensors (F32) then adapter_config.json, each atomically;
// creates the directory. The config holds the fields PEFT writes that matter for loading.
void write_adapter(const std::string& directory, const Adapter& adapter);

// Reads a PEFT LoRA directory; F32, F16 and BF16 tensors become fp32. Throws Error naming the
// file and field or tensor for a missing file, an unsupported config or inconsistent tensors.
Adapter read_adapter(const std::string& directory);

}  // namespace kindred::peft
