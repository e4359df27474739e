#include "infer/loaded_model.h"

#include <algorithm>

#include "core/error.h"
#include "core/paths.h"

namespace kindred::infer {

std::unique_ptr<LoadedModel> LoadedModel::open(const std::string& model) {
    std::string path = resolve_model_path(model);
    gguf::File file = gguf::File::open(path);
    return std::unique_ptr<LoadedModel>(new LoadedModel(std::move(path), std::move(file)));
}

LoadedModel::LoadedModel(std::string path, gguf::File file)
    : path_(std::move(path)),
      file_(std::move(file)),
      decoder_(model::Decoder::from_gguf(file_)),
      tokenizer_(text::Tokenizer::from_gguf(file_.metadata())) {
    const gguf::Metadata& metadata = file_.metadata();
    if (const auto vocab = static_cast<std::int64_t>(tokenizer_.vocab_size()); vocab > decoder_.config().vocab_size) {
        fail("{}: the tokenizer has {} tokens but the model's output layer only {}", path_, vocab,
             decoder_.config().vocab_size);
    }
    if (metadata.contains("tokenizer.ggml.add_bos_token")) add_bos_ = metadata.boolean("tokenizer.ggml.add_bos_token");

    if (!tokenizer_.chat_template().empty()) {
        const std::string name = metadata.contains("general.name") ? metadata.string("general.name") : path_;
        try {
            chat_template_ = text::ChatTemplate::detect(tokenizer_.chat_template(), name);
        } catch (const Error& error) {
            chat_template_problem_ = error.what();
        }
    }

    const auto add_stop_token = [this](std::int32_t id) {
        if (std::find(stop_tokens_.begin(), stop_tokens_.end(), id) == stop_tokens_.end()) stop_tokens_.push_back(id);
    };
    if (const auto eos = tokenizer_.eos_id()) add_stop_token(*eos);
    if (chat_template_) {
        for (const std::string& marker : chat_template_->stop_strings()) {
            if (const auto id = tokenizer_.find_token(marker)) {
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

std::vector<std::int32_t> LoadedModel::encode_chat(std::span<const text::ChatMessage> messages) const {
    // The rendered text carries its own BOS when the family's template writes one.
    return tokenizer_.encode(require_chat_template().render(messages, /*add_generation_prompt=*/true).text);
}

std::vector<std::int32_t> LoadedModel::encode_raw(const std::string& text) const {
    std::vector<std::int32_t> ids;
    if (add_bos_) {
        if (const auto bos = tokenizer_.bos_id()) ids.push_back(*bos);
    }
    const std::vector<std::int32_t> body = tokenizer_.encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
}

}  // namespace kindred::infer
