#include "infer/loaded_model.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/paths.h"
#include "core/progress.h"
#include "formats/peft_adapter.h"
#include "infer/checkpoint_tokenizer.h"

namespace kindred::infer {

std::unique_ptr<LoadedModel> LoadedModel::open(const std::string& model, const std::string& adapter,
                                               model::BaseQuantization quantization, kernels::Precision products,
                                               DType kv_cache) {
    std::unique_ptr<LoadedModel> loaded(new LoadedModel(resolve_model_path(model), quantization));
    loaded->decoder().set_products(products);
    loaded->decoder().set_kv_cache_type(kv_cache);
    if (!adapter.empty()) loaded->attach_adapter(adapter);
    return loaded;
}

namespace {

// PEFT's layers_to_transform as LoraConfig::first_layer: the run first..layers-1 or all layers.
std::int64_t first_adapted_layer(std::span<const std::uint32_t> layers_to_transform, std::int64_t layers,
                                 const std::string& where) {
    if (layers_to_transform.empty()) return 0;
    const auto first = static_cast<std::int64_t>(layers_to_transform.front());
    // Sorted and distinct (peft::read_adapter), so it is the run first..layers-1 exactly when it
    // ends at the last layer and has that many entries.
    if (static_cast<std::int64_t>(layers_to_transform.back()) != layers - 1 ||
        static_cast<std::int64_t>(layers_to_transform.size()) != layers - first)
        fail("{}: layers_to_transform must be a run of layers ending at the model's last ({}); other layer "
             "sets are not supported", where, layers - 1);
    return first;
}

// The adapter module of a PEFT target_parameters entry (peft::kExpertParameters).
model::LoraModule expert_module(const std::string& parameter) {
    return parameter == peft::kExpertParameters[0] ? model::LoraModule::ExpertsGateUp : model::LoraModule::ExpertsDown;
}

}  // namespace

model::LoraConfig lora_config(const peft::LoraConfig& config, const ModelConfig& model, const std::string& where) {
    model::LoraConfig lora;
    lora.rank = static_cast<int>(config.r);
    lora.alpha = config.lora_alpha;
    lora.dropout = 0.0;  // inference: PEFT's dropout is off in eval mode
    lora.rslora = config.use_rslora;
    lora.targets.clear();
    for (const std::string& module : config.target_modules)
        lora.targets.push_back(module.substr(0, module.find("_proj")));  // q_proj -> q, gate_proj -> gate
    for (const std::string& parameter : config.target_parameters)
        lora.targets.push_back(model::lora_module_name(expert_module(parameter)));
    lora.first_layer = first_adapted_layer(config.layers_to_transform, model.num_layers, where);
    return lora;
}

void set_adapter_values(model::LoraAdapters& adapters, const peft::Adapter& adapter, const ModelConfig& config,
                        const std::string& weights_path, const std::string& model_path) {
    for (const peft::LoraTensor& tensor : adapter.tensors) {
        const peft::LoraKey key = peft::parse_lora_key(tensor.name);
        if (std::cmp_greater_equal(key.layer, config.num_layers))
            fail("{}: tensor '{}' is for layer {}, but the model {} has {} layers", weights_path, tensor.name, key.layer,
                 model_path, config.num_layers);
        // Expert stacks are found by the parameter they adapt: PEFT names them by nesting order.
        const bool experts = key.module == peft::kExpertsOuter || key.module == peft::kExpertsNested;
        const model::LoraTensorInfo& info =
            experts ? adapters.tensor(key.layer, expert_module(peft::expert_parameter(adapter.config, key.module, weights_path)),
                                      !key.is_a)
                    : adapters.tensor(tensor.name);
        if (tensor.shape != std::vector<std::uint64_t>{static_cast<std::uint64_t>(info.rows), static_cast<std::uint64_t>(info.cols)})
            fail("{}: tensor '{}' has shape [{}, {}], but the model {} needs [{}, {}]", weights_path, tensor.name,
                 tensor.shape[0], tensor.shape[1], model_path, info.rows, info.cols);
        adapters.set_hf(info.name, tensor.values);
    }
    // Names are unique (validate) and each fits a slot, so equal counts mean every slot is filled.
    if (adapter.tensors.size() != adapters.tensors().size()) {
        for (const model::LoraTensorInfo& info : adapters.tensors()) {
            const bool present = std::any_of(adapter.tensors.begin(), adapter.tensors.end(),
                                             [&](const peft::LoraTensor& t) { return t.name == info.name; });
            if (!present)
                fail("{}: tensor '{}' is missing ({} layers of the model {} need one adapter each)", weights_path, info.name,
                     config.num_layers - adapters.first_layer(), model_path);
        }
    }
}

std::unique_ptr<model::LoraAdapters> read_lora_adapter(const std::string& directory, const model::Decoder& decoder,
                                                       const std::string& model_path, model::LoraUse use) {
    // read_adapter checks the directory on its own (pairs, ranks, targets); what follows checks
    // it against this base.
    const peft::Adapter adapter = peft::read_adapter(directory);
    std::unique_ptr<model::LoraAdapters> adapters;
    try {
        adapters = std::make_unique<model::LoraAdapters>(
            decoder.config(), lora_config(adapter.config, decoder.config(), directory + "/adapter_config.json"),
            decoder.weights().qk_interleaved, use);
    } catch (const Error& error) {
        fail("{}/adapter_config.json: {}", directory, error.what());
    }
    set_adapter_values(*adapters, adapter, decoder.config(), directory + "/adapter_model.safetensors", model_path);
    return adapters;
}

void LoadedModel::attach_adapter(const std::string& directory) {
    adapters_ = read_lora_adapter(directory, *decoder_, path_);
    decoder_->attach_adapter(adapters_.get());
    adapter_path_ = directory;
}

namespace {

// Draws a bar on stderr once quantization has begun; finished when the loader is done.
class QuantizeBar {
public:
    model::QuantizeProgress callback() {
        return [this](std::int64_t done, std::int64_t total, const std::string& tensor) {
            if (!bar_) {
                ProgressOptions options;
                options.label = "quantize";
                options.unit = "tensor";
                bar_.emplace(total, std::move(options));
            }
            bar_->update(done, {{"tensor", tensor}});
        };
    }
    // The last line says what the frozen weights now take (every tensor, quantized or not).
    void finish(const model::Weights& weights) {
        if (!bar_) return;
        std::uint64_t bytes = 0;
        for (const auto& [name, view] : weights.all()) bytes += tensor_bytes(view.type, view.shape);
        bar_->finish({{"frozen_weights_MiB", static_cast<double>(bytes) / (1 << 20)}});
    }

private:
    std::optional<Progress> bar_;
};

}  // namespace

void LoadedModel::open_gguf(model::BaseQuantization quantization) {
    gguf_ = std::make_unique<gguf::File>(gguf::File::open(path_));
    QuantizeBar bar;
    decoder_.emplace(model::Decoder::from_gguf(*gguf_, quantization, bar.callback()));
    bar.finish(decoder_->weights());
    const gguf::Metadata& metadata = gguf_->metadata();
    tokenizer_.emplace(text::Tokenizer::from_gguf(metadata, path_));
    if (metadata.contains("tokenizer.ggml.add_bos_token")) add_bos_ = metadata.boolean("tokenizer.ggml.add_bos_token");
    if (metadata.contains("general.name")) name_ = metadata.string("general.name");
    if (tokenizer_->chat_template().empty() && metadata.contains("general.architecture") &&
        metadata.string("general.architecture") == "gemma3" && tokenizer_->find_token("<start_of_turn>") &&
        tokenizer_->find_token("<end_of_turn>")) {
        // A Gemma 3 GGUF converted without tokenizer_config.json (the published 270M Q4_K_M is one)
        // carries no template; Gemma 3's instruction models all share the one Kindred renders.
        chat_template_ = text::ChatTemplate::of(text::ChatFormat::Gemma3);
    }
}

// An HF checkpoint directory as transformers saves it; its tokenizer files: infer/checkpoint_tokenizer.h.
void LoadedModel::open_checkpoint(model::BaseQuantization quantization) {
    const std::string config_path = path_ + "/config.json", tokenizer_path = path_ + "/tokenizer.json";
    for (const std::string& required : {config_path, tokenizer_path})
        if (!std::filesystem::is_regular_file(required))
            fail("{}: not a Hugging Face checkpoint: {} is missing", path_, required);
    const ModelConfig config = model_config_from_hf_file(config_path);
    checkpoint_ = std::make_unique<safetensors::Checkpoint>(safetensors::Checkpoint::open(path_));
    QuantizeBar bar;
    decoder_.emplace(model::Decoder::from_checkpoint(*checkpoint_, config, quantization, bar.callback()));
    bar.finish(decoder_->weights());
    CheckpointTokenizer files = read_checkpoint_tokenizer(path_);
    tokenizer_.emplace(std::move(files.tokenizer));
    add_bos_ = files.add_bos;
    // The constructor detects a template the tokenizer carries; transformers 5 keeps it beside.
    if (tokenizer_->chat_template().empty() && !files.chat_template.empty()) {
        try {
            chat_template_ = text::ChatTemplate::detect(files.chat_template, name_);
        } catch (const Error& error) {
            chat_template_problem_ = error.what();
        }
    }
}

LoadedModel::LoadedModel(std::string path, model::BaseQuantization quantization) : path_(std::move(path)), name_(path_) {
    if (std::filesystem::is_directory(path_)) open_checkpoint(quantization);
    else open_gguf(quantization);
    if (const auto vocab = static_cast<std::int64_t>(tokenizer_->vocab_size()); vocab > decoder_->config().vocab_size) {
        fail("{}: the tokenizer has {} tokens but the model's output layer only {}", path_, vocab,
             decoder_->config().vocab_size);
    }
    if (!chat_template_ && !tokenizer_->chat_template().empty()) {
        try {
            chat_template_ = text::ChatTemplate::detect(tokenizer_->chat_template(), name_);
        } catch (const Error& error) {
            chat_template_problem_ = error.what();
        }
    }

    const auto add_stop_token = [this](std::int32_t id) {
        if (std::find(stop_tokens_.begin(), stop_tokens_.end(), id) == stop_tokens_.end()) stop_tokens_.push_back(id);
    };
    if (const auto eos = tokenizer_->eos_id()) add_stop_token(*eos);
    if (chat_template_) {
        for (const std::string& marker : chat_template_->stop_strings()) {
            if (const auto id = tokenizer_->find_token(marker)) {
                add_stop_token(*id);
            } else {
                stop_strings_.push_back(marker);
            }
        }
    }
}

const text::ChatTemplate& LoadedModel::require_chat_template() const {
    if (!chat_template_) {
        if (!chat_template_problem_.empty()) fail("{}; use --raw to send the prompt as plain text", chat_template_problem_);
        fail("{}: the model has no chat template (a base model?); use --raw to send the prompt as plain text", path_);
    }
    return *chat_template_;
}

namespace {

void refuse_dropped_bytes(const text::Encoding& encoding, const std::string& what, const std::string& model) {
    if (encoding.dropped_bytes > 0)
        fail("{}: {} byte(s) have no token in the vocabulary of {} (control characters?); remove them", what,
             encoding.dropped_bytes, model);
}

}  // namespace

std::vector<std::int32_t> LoadedModel::encode_chat(std::span<const text::ChatMessage> messages) const {
    // The rendered text carries its own BOS when the family's template writes one. Control tokens
    // come from the template's markup only: message text that spells one stays text.
    return encode_rendered(require_chat_template().render(messages, /*add_generation_prompt=*/true));
}

std::vector<std::int32_t> LoadedModel::encode_rendered(const text::RenderedChat& rendered) const {
    text::Encoding encoding = tokenizer_->encode_with_markup(rendered.text, rendered.markup);
    refuse_dropped_bytes(encoding, "the messages", path_);
    return std::move(encoding.ids);
}

std::vector<std::int32_t> LoadedModel::encode_raw(const std::string& text, bool parse_special) const {
    std::vector<std::int32_t> ids;
    if (add_bos_) {
        if (const auto bos = tokenizer_->bos_id()) ids.push_back(*bos);
    }
    const text::Encoding body = tokenizer_->encode_with_spans(text, parse_special);
    refuse_dropped_bytes(body, "the prompt", path_);
    ids.insert(ids.end(), body.ids.begin(), body.ids.end());
    return ids;
}

}  // namespace kindred::infer
