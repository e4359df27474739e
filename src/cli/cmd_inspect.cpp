// kindred inspect MODEL [--json]: architecture, hyperparameters, tensors, tokenizer summary and chat
// template, of a GGUF file or a Hugging Face checkpoint directory (config.json, safetensors shards,
// tokenizer files as infer/checkpoint_tokenizer.h reads them). Tensor names and shapes are each
// file's own: GGUF's names with ggml's dims (innermost first), safetensors' with PyTorch's shape.
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/paths.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "infer/checkpoint_tokenizer.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace kindred::cli {
namespace {

struct InspectOptions {
    std::string model;
    bool json = false;
};

nlohmann::json describe(const ModelConfig& config) {
    return {
        {"architecture", architecture_name(config.architecture)},
        {"block_count", config.num_layers},
        {"embedding_length", config.hidden_size},
        {"feed_forward_length", config.intermediate_size},
        {"head_count", config.num_heads},
        {"head_count_kv", config.num_kv_heads},
        {"head_dim", config.head_dim},
        {"vocab_size", config.vocab_size},
        {"context_length", config.context_length},
        {"rms_norm_eps", config.rms_norm_eps},
        {"rope_theta", config.rope_theta},
        {"tie_word_embeddings", config.tie_word_embeddings},
        {"expert_count", config.num_experts},
        {"expert_used_count", config.num_experts_per_token},
        {"sliding_window", config.sliding_window},
    };
}

void print_text(const nlohmann::json& report) {
    fmt::print("{:<20}  {}\n", "model", report["path"].get<std::string>());
    fmt::print("{:<20}  {}\n", "format", report["format"].get<std::string>());
    for (const char* key : {"architecture", "block_count", "embedding_length", "feed_forward_length", "head_count",
                            "head_count_kv", "head_dim", "vocab_size", "context_length", "rms_norm_eps", "rope_theta",
                            "tie_word_embeddings", "expert_count", "expert_used_count", "sliding_window"}) {
        const auto& value = report[key];
        fmt::print("{:<20}  {}\n", key, value.is_string() ? value.get<std::string>() : value.dump());
    }
    for (const char* key : {"tokenizer", "add_bos_token", "chat_template"}) {
        const auto& value = report[key];
        fmt::print("{:<20}  {}\n", key, value.is_string() ? value.get<std::string>() : value.dump());
    }
    const auto& tensors = report["tensors"];
    fmt::print("{:<20}  {} ({})\n", "tensors", tensors.size(), report["shape_order"].get<std::string>());
    for (const auto& tensor : tensors) {
        fmt::print("  {:<40} {:<6} {}\n", tensor["name"].get<std::string>(), tensor["type"].get<std::string>(),
                   tensor["shape"].dump());
    }
}

// Which of Kindred's chat formats the template is (what chat and train would render), from `source`.
std::string describe_template(const std::string& source, const std::string& where) {
    if (source.empty()) return "none";
    try {
        return fmt::format("{} ({}, {} bytes)", text::ChatTemplate::detect(source, where).name(), where, source.size());
    } catch (const Error&) {
        return fmt::format("not one Kindred renders ({}, {} bytes)", where, source.size());
    }
}

nlohmann::json inspect_gguf(const std::string& path) {
    const gguf::File file = gguf::File::open(path);
    nlohmann::json report = describe(model_config_from_gguf(file));
    report["path"] = path;
    report["format"] = fmt::format("GGUF v{}", file.version());
    report["shape_order"] = "ggml dims, innermost first";
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& tensor : file.tensors()) {
        tensors.push_back({{"name", tensor.name}, {"type", dtype_name(tensor.type)}, {"shape", tensor.dims}});
    }
    report["tensors"] = std::move(tensors);
    const text::Tokenizer tokenizer = text::Tokenizer::from_gguf(file.metadata(), file.name());
    report["tokenizer"] = tokenizer.summary();
    const gguf::Metadata& metadata = file.metadata();
    report["add_bos_token"] =
        metadata.contains("tokenizer.ggml.add_bos_token") && metadata.boolean("tokenizer.ggml.add_bos_token");
    report["chat_template"] = describe_template(tokenizer.chat_template(), "tokenizer.chat_template");
    return report;
}

nlohmann::json inspect_checkpoint(const std::string& directory) {
    const std::string config_path = directory + "/config.json";
    if (!std::filesystem::is_regular_file(config_path)) {
        fail("{}: not a Hugging Face checkpoint: {} is missing", directory, config_path);
    }
    nlohmann::json report = describe(model_config_from_hf_file(config_path));
    const safetensors::Checkpoint checkpoint = safetensors::Checkpoint::open(directory);
    report["path"] = directory;
    report["format"] = fmt::format("Hugging Face checkpoint, {} safetensors file{}", checkpoint.files().size(),
                                   checkpoint.files().size() == 1 ? "" : "s");
    report["shape_order"] = "PyTorch shape, outermost first";
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& tensor : checkpoint.tensors()) {
        tensors.push_back({{"name", tensor.name}, {"type", dtype_name(tensor.type)}, {"shape", tensor.shape}});
    }
    report["tensors"] = std::move(tensors);
    const infer::CheckpointTokenizer files = infer::read_checkpoint_tokenizer(directory);
    report["tokenizer"] = files.tokenizer.summary();
    report["add_bos_token"] = files.add_bos;
    report["chat_template"] = describe_template(
        files.chat_template, std::filesystem::path(files.chat_template_path).filename().string());
    return report;
}

void run_inspect(const InspectOptions& options) {
    const std::string path = resolve_model_path(options.model);
    const nlohmann::json report = std::filesystem::is_directory(path) ? inspect_checkpoint(path) : inspect_gguf(path);
    if (options.json) {
        fmt::print("{}\n", report.dump(2));
    } else {
        print_text(report);
    }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
    auto options = std::make_shared<InspectOptions>();
    CLI::App* command = app.add_subcommand("inspect", "Show a model's architecture, hyperparameters, tensors and tokenizer");
    command->add_option("model", options->model, "GGUF file, Hugging Face checkpoint directory, or `default` for the embedded SmolLM2-135M-Instruct")->required();
    command->add_flag("--json", options->json, "Print one JSON object instead of text");
    command->callback([options] { run_inspect(*options); });
}

}  // namespace kindred::cli
