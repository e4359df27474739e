// kindred tokenize: text -> token ids with the model's own tokenizer (no special tokens added): a GGUF
// file's, a Hugging Face checkpoint directory's (infer/checkpoint_tokenizer.h) or a tokenizer.json's.
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/paths.h"
#include "formats/gguf.h"
#include "infer/checkpoint_tokenizer.h"
#include "text/tokenizer.h"

namespace kindred::cli {
namespace {

struct TokenizeOptions {
    std::string model;
    std::string tokenizer_json;
    std::string text;
    std::string file;
    bool json = false;
};
text::Tokenizer load_tokenizer(const TokenizeOptions& options) {
    if (!options.tokenizer_json.empty()) return text::Tokenizer::from_hf(options.tokenizer_json);
    const std::string path = resolve_model_path(options.model);
    if (std::filesystem::is_directory(path)) return infer::read_checkpoint_tokenizer(path).tokenizer;
    const gguf::File file = gguf::File::open(path);
    return text::Tokenizer::from_gguf(file.metadata(), file.name());
}

void run_tokenize(const TokenizeOptions& options) {
    const text::Tokenizer tokenizer = load_tokenizer(options);
    const std::string input = options.file.empty() ? options.text : read_file_text(options.file, kMaxInputTextBytes);
    const std::vector<std::int32_t> ids = tokenizer.encode(input);
    if (options.json) {
        fmt::print("{}\n", nlohmann::json(ids).dump());
        return;
    }
    for (const std::int32_t id : ids) {
        fmt::print("{:>8}  {}\n", id, nlohmann::json(std::string(tokenizer.token_text(id))).dump());
    }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
    auto options = std::make_shared<TokenizeOptions>();
    CLI::App* command = app.add_subcommand("tokenize", "Encode text into token ids (no special tokens added)");
    auto* source = command->add_option_group("tokenizer source");
    source->add_option("--model", options->model, "Model whose tokenizer to use: a GGUF file, a Hugging Face checkpoint directory, or `default`");
    source->add_option("--tokenizer", options->tokenizer_json, "Hugging Face tokenizer.json")->check(CLI::ExistingFile);
    source->require_option(1);
    auto* input = command->add_option_group("input");
    input->add_option("--text", options->text, "Text to encode");
    input->add_option("--file", options->file, "File whose bytes to encode")->check(CLI::ExistingFile);
    input->require_option(1);
    command->add_flag("--json", options->json, "Print exactly one JSON array of ids");
    command->callback([options] { run_tokenize(*options); });
}

}  // namespace kindred::cli
