// kindred train sft --config recipe.yaml [--resume] [key=value ...]: reads the recipe (overrides
// applied), opens the model, tokenizes the chat data and runs train/sft.h in runs/<name>/.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "infer/loaded_model.h"
#include "train/chat_dataset.h"
#include "train/recipe.h"
#include "train/sft.h"

namespace kindred::cli {
namespace {

namespace fs = std::filesystem;

struct TrainOptions {
    std::string config;
    bool resume = false;
    std::vector<std::string> overrides;
    int threads = 0;
};

// runs/<name>; without a name a fresh run gets a UTC timestamp and --resume takes the newest run
// folder that holds a checkpoint (timestamps sort by time).
std::string run_directory(const train::SftRecipe& recipe, bool resume) {
    if (!recipe.name.empty()) return (fs::path(recipe.output_dir) / recipe.name).string();
    if (!resume) {
        const auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
        return (fs::path(recipe.output_dir) / fmt::format("{:%Y%m%d-%H%M%S}", now)).string();
    }
    std::string newest;
    if (fs::is_directory(recipe.output_dir)) {
        for (const auto& entry : fs::directory_iterator(recipe.output_dir)) {
            if (fs::exists(entry.path() / "checkpoints") && entry.path().string() > newest) newest = entry.path().string();
        }
    }
    if (newest.empty()) fail("--resume: no run with checkpoints under {} (set `name` to pick one)", recipe.output_dir);
    return newest;
}

void run_train(const TrainOptions& options) {
    if (options.threads < 0) fail("--threads must be >= 0, got {}", options.threads);
    if (options.threads > 0) set_thread_count(options.threads);
    Config config = Config::load(options.config);
    config.apply_overrides(options.overrides);
    const train::SftRecipe recipe = train::read_sft_recipe(config);

    const auto model = infer::LoadedModel::open(recipe.model);
    train::ChatDatasetOptions data_options;
    data_options.max_seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    data_options.context_length = static_cast<std::size_t>(model->decoder().config().context_length);
    const auto dataset = train::load_chat_dataset(recipe.data_path, model->tokenizer(), model->require_chat_template(), data_options);
    for (const auto& line : train::warnings(dataset, data_options)) fmt::print(stderr, "warning: {}\n", line);
    if (dataset.examples.empty()) fail("{}: no usable conversations", recipe.data_path);

    train::SftOptions sft;
    sft.run_dir = run_directory(recipe, options.resume);
    sft.resume = options.resume;
    sft.base_model = model->path();
    sft.pad_id = model->tokenizer().eos_id().value_or(0);
    fmt::print(stderr, "run {}: {} conversations ({} target tokens), {} steps\n", sft.run_dir, dataset.examples.size(),
               dataset.stats.target_tokens, recipe.max_steps);
    const auto result = train::run_sft(recipe, model->decoder(), dataset.examples, sft);
    if (result.losses.empty()) {
        fmt::print("{}: already complete at step {}\n", sft.run_dir, result.last_step);
        return;
    }
    fmt::print("{}: steps {}..{}, loss {:.4f} -> {:.4f}, {:.0f} tokens/s, {:.1f} s{}\n", sft.run_dir, result.first_step + 1,
               result.last_step, result.losses.front(), result.losses.back(), result.tokens_per_s, result.elapsed_s,
               result.skipped_steps > 0 ? fmt::format(", {} steps skipped", result.skipped_steps) : "");
}

}  // namespace

void add_train_command(CLI::App& app) {
    auto* train = app.add_subcommand("train", "Fine-tune a model");
    train->require_subcommand(1);
    auto options = std::make_shared<TrainOptions>();
    auto* sft = train->add_subcommand("sft", "Supervised fine-tuning of a LoRA adapter on chat JSONL");
    sft->add_option("--config", options->config, "Recipe YAML (see configs/smollm2-lora.yaml)")->required();
    sft->add_flag("--resume", options->resume, "Continue the run from its latest checkpoint");
    sft->add_option("--threads", options->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    sft->add_option("overrides", options->overrides, "key=value recipe overrides (e.g. optimisation.lr=1e-4)");
    sft->callback([options] { run_train(*options); });
}

}  // namespace kindred::cli
