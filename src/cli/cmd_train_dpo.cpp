// kindred train dpo --config recipe.yaml [--resume] [key=value ...]: reads the DPO recipe, opens
// the model, tokenizes the pairs (and dev pairs), says what it trains, and runs train/dpo.h in
// runs/<name>/ (docs/dpo.md). Data parallel under mpirun/srun/torchrun as `train sft` is
// (docs/distributed.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "core/config.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "infer/loaded_model.h"
#include "train/data_parallel.h"
#include "train/dpo.h"
#include "train/preference_pairs.h"

namespace kindred::cli {
namespace {

struct DpoFlags : RankOptions {
    std::string config;
    bool resume = false;
    std::vector<std::string> overrides;
};

train::PairDataset load_pairs(const std::string& path, const infer::LoadedModel& model, const train::DpoRecipe& recipe,
                              bool root) {
    std::vector<std::string> warnings;
    auto dataset = train::load_recipe_pairs(path, model, recipe, warnings);
    if (root)
        for (const auto& line : warnings) fmt::print(stderr, "warning: {}\n", line);
    return dataset;
}

void run_train_dpo(const DpoFlags& flags, dist::Communicator& communicator) {
    const bool root = communicator.is_root();
    Config config = Config::load(flags.config);
    config.apply_overrides(flags.overrides);
    const train::DpoRecipe recipe = train::read_dpo_recipe(config);
    if (!std::filesystem::is_regular_file(recipe.run.data_path))
        fail("data.path: pairs file '{}' not found (write it with `kindred pairs build --config {}`)", recipe.run.data_path,
             flags.config);

    const auto model = infer::LoadedModel::open(recipe.run.model, "", recipe.run.quantize);
    const train::DataParallel parallel(&communicator);
    if (parallel.active()) parallel.require_same("the model files", train::model_fingerprint(model->path()));
    const auto pairs = load_pairs(recipe.run.data_path, *model, recipe, root);
    std::optional<train::PairDataset> dev;
    if (!recipe.run.dev_path.empty()) dev = load_pairs(recipe.run.dev_path, *model, recipe, root);

    train::DpoOptions options;
    options.run.run_dir = parallel.root_value(train::run_directory(recipe.run, flags.resume));
    options.run.resume = flags.resume;
    options.run.base_model = model->path();
    options.run.progress_label = "dpo";
    options.model_path = model->path();
    options.pad_id = model->tokenizer().eos_id().value_or(0);
    options.dev = dev ? &*dev : nullptr;
    options.run.communicator = &communicator;
    if (root) {
        if (communicator.size() > 1)
            fmt::print(stderr, "data parallel: {} ranks over {}, {} threads each\n", communicator.size(),
                       communicator.backend(), thread_pool().size());
        fmt::print(stderr, "run {}: {} pairs ({} scored completion tokens, {} with a rule-breaking chosen reply), {} steps\n",
                   options.run.run_dir, pairs.examples.size(), pairs.stats.completion_tokens, pairs.stats.violating_chosen,
                   recipe.run.max_steps);
        fmt::print(stderr, "objective: {} loss, beta {:g}{}{}; reference and start: {}\n",
                   train::dpo_loss_name(recipe.loss.type), recipe.loss.beta,
                   recipe.loss.label_smoothing > 0.0 ? fmt::format(", label smoothing {:g}", recipe.loss.label_smoothing) : "",
                   recipe.loss.violation_penalty > 0.0 ? fmt::format(", violation penalty {:g}", recipe.loss.violation_penalty)
                                                       : "",
                   recipe.reference);
        if (dev) fmt::print(stderr, "dev: {} pairs from {}\n", dev->examples.size(), recipe.run.dev_path);
    }
    const auto result = train::run_dpo(recipe, model->decoder(), pairs, options);
    if (!root) return;
    fmt::print("reference log-probs: {}\n", result.reference.from_cache
                                                ? fmt::format("read from {}", train::reference_cache_path(pairs.path))
                                                : fmt::format("{} sequences scored once{}, cached in {}",
                                                              result.reference.sequences_scored,
                                                              parallel.active() ? fmt::format(" (shared out over {} ranks)", parallel.size()) : "",
                                                              train::reference_cache_path(pairs.path)));
    if (result.steps.empty()) {
        fmt::print("{}: already complete at step {}\n", options.run.run_dir, result.last_step);
        return;
    }
    const auto& first = result.steps.front();
    const auto& last = result.steps.back();
    fmt::print("{}: steps {}..{}, loss {:.4f} -> {:.4f}, reward accuracy {:.3f} -> {:.3f}, margin {:.4f} -> {:.4f}, "
               "{:.0f} tokens/s, {:.1f} s{}\n",
               options.run.run_dir, result.first_step + 1, result.last_step, first.loss, last.loss,
               first.metrics.rewards_accuracies, last.metrics.rewards_accuracies, first.metrics.rewards_margins,
               last.metrics.rewards_margins, result.tokens_per_s, result.elapsed_s,
               result.skipped_steps > 0 ? fmt::format(", {} steps skipped", result.skipped_steps) : "");
    if (result.final_dev) fmt::print("dev: {}\n", train::to_json(*result.final_dev).dump());
}

}  // namespace

void add_train_dpo_command(CLI::App& train) {
    auto flags = std::make_shared<DpoFlags>();
    auto* dpo = train.add_subcommand("dpo", "DPO of a LoRA policy against the frozen SFT adapter on preference pairs");
    dpo->add_option("--config", flags->config, "DPO recipe YAML (see configs/smollm2-dpo.yaml)")->required();
    dpo->add_flag("--resume", flags->resume, "Continue the run from its latest checkpoint");
    dpo->add_option("overrides", flags->overrides, "key=value recipe overrides (e.g. dpo.beta=0.2)");
    add_rank_options(*dpo, *flags);
    dpo->callback([flags] { run_on_ranks(*flags, [&](dist::Communicator& communicator) { run_train_dpo(*flags, communicator); }); });
}

}  // namespace kindred::cli
