#include "cli/emotion_head.h"

#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/source.h"
#include "infer/loaded_model.h"
#include "model/heads.h"
#include "model/trainable_decoder.h"
#include "train/emotion_eval.h"

namespace kindred::cli {

EmotionHeadScores score_emotion_head(const EmotionHeadRequest& request) {
    const auto model = infer::LoadedModel::open(request.model);
    model::Decoder& decoder = model->decoder();
    // The adapter folder holds the heads, and a PEFT adapter unless the trunk was left frozen.
    const bool has_lora = std::filesystem::exists(std::filesystem::path(request.adapter) / "adapter_config.json");
    model::LoraConfig frozen;
    frozen.first_layer = decoder.config().num_layers;
    const std::unique_ptr<model::LoraAdapters> adapters =
        has_lora ? infer::read_lora_adapter(request.adapter, decoder, model->path(), model::LoraUse::Training)
                 : std::make_unique<model::LoraAdapters>(decoder.config(), frozen, decoder.weights().qk_interleaved);
    const auto loaded = model::read_heads_with_labels(request.adapter, decoder.config().hidden_size);
    if (loaded.emotion_labels.empty()) fail("{}: the heads hold no emotion head", request.adapter);
    model::TrainableDecoder trainer(decoder, *adapters, /*checkpoint_activations=*/false,
                                    static_cast<std::int64_t>(request.max_seq_len));

    train::GoEmotionsFileOptions file_options;
    // The head knows the system message it was trained with; a head that does not gets
    // `kindred data prepare`'s default.
    const std::string& trained_with = loaded.heads.config().emotion_system_prompt;
    file_options.system_prompt =
        request.system_prompt.value_or(trained_with.empty() ? data::LoadOptions{}.system_prompt : trained_with);
    file_options.max_seq_len = request.max_seq_len;
    if (request.threshold) file_options.threshold = *request.threshold;
    file_options.lines = request.lines;
    EmotionHeadScores scores;
    scores.report = train::evaluate_goemotions_file(request.data, trainer, loaded.heads, loaded.emotion_labels, model->tokenizer(),
                                                    model->require_chat_template(), file_options);
    scores.activation = model::emotion_activation_name(loaded.heads.config().emotion_activation);
    return scores;
}

}  // namespace kindred::cli
