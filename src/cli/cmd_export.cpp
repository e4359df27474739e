// kindred export --adapter DIR --format peft|gguf-lora --out PATH: a trained adapter (a PEFT
// directory, e.g. runs/<name>/adapter) rewritten as a PEFT directory or as a llama.cpp LoRA GGUF
// for the base model given by --model (its architecture and head counts decide the q/k layout): a
// GGUF file, or a Hugging Face checkpoint directory, whose config.json gives the same facts for the
// GGUF llama.cpp's converter makes of it (that GGUF is what the adapter is then loaded on).
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/paths.h"
#include "formats/gguf.h"
#include "formats/gguf_lora.h"
#include "formats/model_config.h"
#include "formats/peft_adapter.h"

namespace kindred::cli {
namespace {

struct ExportOptions {
    std::string adapter;
    std::string format;
    std::string out;
    std::string model = "default";
};

void run_export(const ExportOptions& options) {
    const peft::Adapter adapter = peft::read_adapter(options.adapter);
    if (options.format == "peft") {
        peft::write_adapter(options.out, adapter);
    } else if (options.format == "gguf-lora") {
        const std::string base_path = resolve_model_path(options.model);
        gguf_lora::WriteOptions write;
        if (std::filesystem::is_directory(base_path)) {
            const ModelConfig config = model_config_from_hf_file(base_path + "/config.json");
            write.architecture = gguf_architecture_name(config.architecture);
            write.n_head = static_cast<std::uint32_t>(config.num_heads);
            write.n_head_kv = static_cast<std::uint32_t>(config.num_kv_heads);
        } else {
            const auto base = gguf::File::open(base_path);
            const auto& meta = base.metadata();
            write.architecture = meta.string("general.architecture");
            write.n_head = static_cast<std::uint32_t>(meta.uint(write.architecture + ".attention.head_count"));
            write.n_head_kv = static_cast<std::uint32_t>(meta.uint(write.architecture + ".attention.head_count_kv"));
        }
        write.lora_alpha = static_cast<float>(adapter.config.lora_alpha);
        write.r = adapter.config.r;
        write.use_rslora = adapter.config.use_rslora;
        gguf_lora::write(options.out, adapter.tensors, write);
    } else {
        fail("--format must be 'peft' or 'gguf-lora', got '{}'", options.format);
    }
    fmt::print("{} ({} tensors, rank {}) -> {} ({})\n", options.adapter, adapter.tensors.size(), adapter.config.r,
               options.out, options.format);
}

}  // namespace

void add_export_command(CLI::App& app) {
    auto options = std::make_shared<ExportOptions>();
    auto* command = app.add_subcommand("export", "Convert a trained LoRA adapter to PEFT or llama.cpp GGUF");
    command->add_option("--adapter", options->adapter, "PEFT adapter directory (e.g. runs/<name>/adapter)")->required();
    command->add_option("--format", options->format, "peft | gguf-lora")->required();
    command->add_option("--out", options->out, "Output directory (peft) or .gguf file (gguf-lora)")->required();
    command->add_option("--model", options->model, "Base model the adapter was trained on (gguf-lora): GGUF file or Hugging Face checkpoint directory")->capture_default_str();
    command->callback([options] { run_export(*options); });
}

}  // namespace kindred::cli
