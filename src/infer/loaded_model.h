// infer/loaded_model.h — everything generation needs from one model, opened once: a GGUF file or
// a Hugging Face checkpoint directory (config.json, safetensors shards, tokenizer.json and
// tokenizer_config.json), kept mapped (the decoder's weights are views into it, so it lives as
// long as they do), the decoder, the tokenizer, the chat template when the model has one, and the
// tokens and texts that end a turn. A model stored in bf16/fp16/fp32 may be quantized at load
// into a 4-bit base (model/quantize_weights.h).
// An optional PEFT LoRA adapter directory is checked against the base and attached to the
// decoder; the LoadedModel owns its parameters.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/peft_adapter.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace kindred::infer {

// The LoRA shape a PEFT adapter config describes (rank, alpha, rsLoRA, target modules and expert
// stacks, the first adapted layer), with dropout 0 and the default seed, for `model`. Error naming
// `where` when layers_to_transform is not a run of layers ending at the model's last.
model::LoraConfig lora_config(const peft::LoraConfig& config, const ModelConfig& model, const std::string& where);

// Sets every tensor of `adapters` (laid out for `config`, from lora_config of this adapter) from
// `adapter`'s (HF layout): Error naming `weights_path` and the tensor when one is for a layer the
// model (`model_path`) lacks, has another shape, or is missing.
void set_adapter_values(model::LoraAdapters& adapters, const peft::Adapter& adapter, const ModelConfig& config,
                        const std::string& weights_path, const std::string& model_path);

// A PEFT LoRA adapter directory read and checked against `decoder` (the model at `model_path`,
// named in messages): layer count, target modules and tensor shapes must fit, else an Error names
// the path and tensor; layers_to_transform must be a run of layers ending at the last
// (LoraConfig::first_layer). The result is laid out for the decoder; `use` Inference holds its
// parameters only, Training also gradients (for a model::TrainableDecoder, e.g. evaluating heads).
std::unique_ptr<model::LoraAdapters> read_lora_adapter(const std::string& directory, const model::Decoder& decoder,
                                                       const std::string& model_path,
                                                       model::LoraUse use = model::LoraUse::Inference);

class LoadedModel {
public:
    // `model` is a GGUF path, an HF checkpoint directory or an alias (`default`); `adapter`, when
    // not empty, a PEFT LoRA directory made for that base; `quantization` quantizes the base's
    // float linear weights at load (refused for a model whose weights are already quantized), with
    // a progress bar on stderr; `products` is the decoder's Precision (Decoder::set_products: fp32,
    // exact, or int8, 8-bit activations as llama.cpp computes); `kv_cache` the element type of the
    // KV caches made for it (Decoder::set_kv_cache_type: F32, F16 or Q8_0). Missing, corrupt or unsupported files, and adapters whose layer
    // count, target modules or tensor shapes do not fit the base, are Errors naming the path (and
    // the tensor).
    static std::unique_ptr<LoadedModel> open(const std::string& model, const std::string& adapter = "",
                                             model::BaseQuantization quantization = model::BaseQuantization::None,
                                             kernels::Precision products = kernels::Precision::F32,
                                             DType kv_cache = DType::F32);

    LoadedModel(const LoadedModel&) = delete;
    LoadedModel& operator=(const LoadedModel&) = delete;

    const std::string& path() const { return path_; }
    // The adapter directory, empty without one.
    const std::string& adapter_path() const { return adapter_path_; }
    // Not const: a forward pass writes the decoder's activation buffers.
    model::Decoder& decoder() { return *decoder_; }
    const model::Decoder& decoder() const { return *decoder_; }
    const text::Tokenizer& tokenizer() const { return *tokenizer_; }

    // The chat template; an Error (suggesting --raw) when the model has none Kindred can render.
    // A template that is present but unknown is an Error only here, so that raw prompts and
    // scoring still work with such a model.
    const text::ChatTemplate& require_chat_template() const;
    // Token ids for a rendered chat ending in the assistant's generation prompt; only the template
    // writes control tokens (message text spelling one stays text, Tokenizer::encode_with_markup).
    // Errors when the model has no usable template or a message holds bytes the vocabulary cannot
    // encode.
    std::vector<std::int32_t> encode_chat(std::span<const text::ChatMessage> messages) const;
    // The same for a chat already rendered (text/chat_template.h), perhaps with text appended after
    // its markup (a pre-filled reply start): control tokens match only inside rendered.markup.
    std::vector<std::int32_t> encode_rendered(const text::RenderedChat& rendered) const;
    // Raw text: special-token markup in it is parsed unless parse_special is false (then it stays
    // text); BOS is prepended when the tokenizer has one and the GGUF asks for it
    // (tokenizer.ggml.add_bos_token; an HF checkpoint: tokenizer_config.json's add_bos_token). Bytes the vocabulary has no token for are an Error.
    std::vector<std::int32_t> encode_raw(const std::string& text, bool parse_special = true) const;
    // Whether encode_raw prepends BOS (the GGUF's tokenizer.ggml.add_bos_token).
    bool adds_bos() const { return add_bos_; }

    // EOS and the template's end-of-turn markers that are single tokens.
    const std::vector<std::int32_t>& stop_tokens() const { return stop_tokens_; }
    // End-of-turn markers that are not single tokens, matched in the text.
    const std::vector<std::string>& stop_strings() const { return stop_strings_; }
    // Whether chat replies are gpt-oss harmony messages, of which only the final channel may be
    // shown (GenerationOptions::harmony).
    bool harmony() const { return chat_template_ && chat_template_->format() == text::ChatFormat::GptOss; }

private:
    LoadedModel(std::string path, model::BaseQuantization quantization);
    void open_gguf(model::BaseQuantization quantization);
    void open_checkpoint(model::BaseQuantization quantization);
    void attach_adapter(const std::string& directory);

    std::string path_;
    // One of the two holds the weights' memory (heap-held, so views stay put when this moves).
    std::unique_ptr<gguf::File> gguf_;
    std::unique_ptr<safetensors::Checkpoint> checkpoint_;
    std::optional<model::Decoder> decoder_;
    std::string adapter_path_;
    std::unique_ptr<model::LoraAdapters> adapters_;
    std::optional<text::Tokenizer> tokenizer_;
    std::string name_;  // general.name, or the path
    std::optional<text::ChatTemplate> chat_template_;
    std::string chat_template_problem_;  // why detection failed, when it did
    bool add_bos_ = false;
    std::vector<std::int32_t> stop_tokens_;
    std::vector<std::string> stop_strings_;
};

}  // namespace kindred::infer
