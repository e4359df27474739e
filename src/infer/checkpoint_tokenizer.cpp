#include "infer/checkpoint_tokenizer.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace kindred::infer {

namespace {

// tokenizer_config.json is small; the bound only stops a hostile file from being read whole.
constexpr std::uintmax_t kMaxTokenizerConfigBytes = 16 << 20;
constexpr std::uintmax_t kMaxChatTemplateBytes = 1 << 20;

}  // namespace

CheckpointTokenizer read_checkpoint_tokenizer(const std::string& directory) {
    const std::string tokenizer_path = directory + "/tokenizer.json";
    const std::string config_path = directory + "/tokenizer_config.json";
    const std::string jinja_path = directory + "/chat_template.jinja";
    if (!std::filesystem::is_regular_file(tokenizer_path)) {
        fail("{}: not a Hugging Face checkpoint: {} is missing", directory, tokenizer_path);
    }
    const bool has_config = std::filesystem::is_regular_file(config_path);
    CheckpointTokenizer result{text::Tokenizer::from_hf(tokenizer_path, has_config ? config_path : ""), false, {}, {}};
    if (has_config) {
        const nlohmann::json config = read_json_file(config_path, kMaxTokenizerConfigBytes);
        const auto bos = config.find("add_bos_token");
        if (bos != config.end() && !bos->is_boolean() && !bos->is_null())
            fail("{}: add_bos_token must be true or false", config_path);
        if (bos != config.end() && bos->is_boolean()) result.add_bos = bos->get<bool>();
    }
    if (!result.tokenizer.chat_template().empty()) {
        result.chat_template = result.tokenizer.chat_template();
        result.chat_template_path = config_path;
    } else if (std::filesystem::is_regular_file(jinja_path)) {
        result.chat_template = read_file_text(jinja_path, kMaxChatTemplateBytes);
        result.chat_template_path = jinja_path;
    }
    return result;
}

}  // namespace kindred::infer
