// kindred tune --config recipe.yaml [--search grid|random] [--trials N] [--seed S] [--out DIR]
// [key=value ...]: λ tuning on dev (train/tune.h, docs/tuning.md). Checks the recipe and every
// trial's recipe before anything heavy, opens the model and tokenizes the data ONCE, then trains
// each trial with train/sft.h into <out>/trial-NNN/ (its checkpoints removed once it finished), one
// progress line per trial, and prints the table of trials at the end.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/ranks.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "infer/loaded_model.h"
#include "train/chat_dataset.h"
#include "train/dev_eval.h"
#include "train/recipe.h"
#include "train/sft.h"
#include "train/tune.h"

namespace kindred::cli {
namespace {

namespace fs = std::filesystem;

struct TuneFlags {
    std::string config;
    std::string search;
    std::int64_t trials = 0;
    std::int64_t seed = 0;
    std::string out;
    std::vector<std::string> overrides;
    int threads = 0;
    CLI::Option* trials_option = nullptr;
    CLI::Option* seed_option = nullptr;
};

std::string lambdas_text(const std::vector<std::pair<std::string, double>>& lambdas) {
    std::string text;
    for (const auto& [key, value] : lambdas) text += fmt::format("{}{}={}", text.empty() ? "" : " ", key, value);
    return text;
}

std::string metric_text(const char* name, double value) {
    return std::isnan(value) ? std::string() : fmt::format(", {} {:.4f}", name, value);
}

void run_tune_command(const TuneFlags& flags) {
    apply_threads_flag(flags.threads);
    Config config = Config::load(flags.config);
    config.apply_overrides(flags.overrides);
    // The flags are the tune section's keys, so a recipe can hold them and best.yaml's header and
    // resume see one set of settings whichever way they were given.
    if (!flags.search.empty()) config.apply_override("tune.search=" + flags.search);
    if (flags.trials_option->count() > 0) config.apply_override(fmt::format("tune.trials={}", flags.trials));
    if (flags.seed_option->count() > 0) config.apply_override(fmt::format("tune.seed={}", flags.seed));

    train::TuneOptions options;
    options.settings = train::read_tune_settings(config);
    const train::SftRecipe base = train::read_sft_recipe(config);
    if (base.dev_path.empty())
        fail("{}: kindred tune ranks trials on dev metrics, so the recipe must set data.dev_path", flags.config);
    options.recipe_yaml = config.dump();
    options.recipe_source = flags.config;
    const std::string name = base.name.empty() ? fs::path(flags.config).stem().string() : base.name;
    options.out_dir = flags.out.empty() ? (fs::path(base.output_dir) / ("tune-" + name)).string() : flags.out;

    // Every trial's recipe is checked now (a λ out of range, all weights 0), not after hours of
    // training; the data is tokenized for everything any trial needs.
    const auto specs = train::trial_specs(options);
    bool any_emotion = false, any_without_emotion = false;
    std::string teacher_rules;
    for (const auto& spec : specs) {
        try {
            Config trial_config = spec.config();
            const auto trial = train::read_sft_recipe(trial_config);
            (train::emotion_active(trial) ? any_emotion : any_without_emotion) = true;
            if (teacher_rules.empty()) teacher_rules = train::safety_rules_text(trial);
        } catch (const Error& e) {
            fail("{} ({}): {}", spec.name, lambdas_text(spec.lambdas), e.what());
        }
    }

    const auto model = infer::LoadedModel::open(base.model, "", base.quantize);
    train::ChatDatasetOptions data_options;
    data_options.max_seq_len = static_cast<std::size_t>(base.max_seq_len);
    data_options.context_length = static_cast<std::size_t>(model->decoder().config().context_length);
    data_options.keep_emotion_only = any_emotion;
    data_options.emotion_space = base.heads.emotion_space;  // a space is not a tunable λ: trials share it
    data_options.teacher_rules = teacher_rules;
    data_options.style = base.style;
    const auto& chat = model->require_chat_template();
    const auto dataset = train::load_chat_dataset(base.data_path, model->tokenizer(), chat, data_options);
    for (const auto& line : train::warnings(dataset, data_options)) fmt::print(stderr, "warning: {}\n", line);
    if (dataset.examples.empty()) fail("{}: no usable conversations", base.data_path);
    // One dev set for every trial, so their metrics compare: emotion-only examples have no LM
    // target (the NLL is unchanged) and only count where an emotion head exists.
    const auto dev = train::load_chat_dataset(base.dev_path, model->tokenizer(), chat, data_options);
    for (const auto& line : train::warnings(dev, data_options)) fmt::print(stderr, "warning: {}\n", line);
    // A trial without an active emotion term trains on what `kindred train sft` would load for it:
    // no emotion-only examples (they only feed the emotion head).
    std::vector<train::TokenizedExample> with_targets;
    if (any_emotion && any_without_emotion) {
        for (const auto& example : dataset.examples) {
            if (example.target_count > 0) with_targets.push_back(example);
        }
    }

    fmt::print(stderr, "tune {}: {} trials of {} steps, {} train / {} dev examples\n", options.out_dir, specs.size(),
               options.settings.steps, dataset.examples.size(), dev.examples.size());
    options.on_trial = [](const train::TrialRecord& trial, std::size_t done, std::size_t total) {
        std::string line = fmt::format("[{}/{}] {} {}: ", done, total, trial.name, lambdas_text(trial.lambdas));
        if (trial.failed()) {
            line += "failed: " + trial.error;
        } else {
            line += fmt::format("J {:.4f}{}{}{}{}, {:.1f} s{}", trial.objective, metric_text("nll", trial.dev.nll),
                                metric_text("emotion F1", trial.dev.emotion_macro_f1),
                                metric_text("strategy F1", trial.dev.strategy_macro_f1), metric_text("VA MSE", trial.dev.va_mse),
                                trial.wall_s, trial.reused ? " (earlier run)" : "");
        }
        fmt::print(stderr, "{}\n", line);
    };
    const auto run_trial = [&](const train::TrialSpec& spec) {
        Config trial_config = spec.config();
        const auto recipe = train::read_sft_recipe(trial_config);
        train::SftOptions sft;
        sft.run_dir = spec.run_dir;
        sft.base_model = model->path();
        sft.pad_id = model->tokenizer().eos_id().value_or(0);
        sft.dev = dev.examples;
        const auto& examples = train::emotion_active(recipe) || !any_emotion ? dataset.examples : with_targets;
        if (examples.empty()) fail("{}: no training example has an LM target", spec.name);
        const auto result = train::run_sft(recipe, model->decoder(), examples, sft);
        if (!result.final_dev) fail("{}: the run ended without dev metrics", spec.name);
        // Tune resumes whole trials, so a finished trial's checkpoints (3x its adapter: weights and
        // both AdamW moments) are dead weight; its adapter, metrics and charts stay.
        std::error_code ec;
        fs::remove_all(fs::path(spec.run_dir) / "checkpoints", ec);
        if (ec) fmt::print(stderr, "warning: {}: could not remove the trial's checkpoints: {}\n", spec.run_dir, ec.message());
        return *result.final_dev;
    };
    const auto result = train::run_tune(options, run_trial);

    const auto& best = result.trials[result.best];
    fmt::print("{}\nchosen: {} ({}), J {:.4f}\nrecipe: {}\n", train::trials_table(result), best.name,
               lambdas_text(best.lambdas), best.objective, (fs::path(options.out_dir) / "best.yaml").string());
}

}  // namespace

void add_tune_command(CLI::App& app) {
    auto flags = std::make_shared<TuneFlags>();
    auto* tune = app.add_subcommand("tune", "Choose the loss weights (lambda) by short SFT trials scored on dev");
    tune->add_option("--config", flags->config, "Recipe YAML with a tune: section (see configs/smollm2-multitask-tune.yaml)")
        ->required();
    tune->add_option("--search", flags->search, "grid (every combination) or random (--trials distinct draws)")
        ->check(CLI::IsMember({"grid", "random"}));
    flags->trials_option = tune->add_option("--trials", flags->trials, "Number of random draws (tune.trials)");
    flags->seed_option = tune->add_option("--seed", flags->seed, "Seed of the random draws (tune.seed)");
    tune->add_option("--out", flags->out, "Folder of the trials and results (default: <output.dir>/tune-<name>)");
    tune->add_option("--threads", flags->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    tune->add_option("overrides", flags->overrides, "key=value recipe overrides (e.g. tune.steps=10)");
    tune->callback([flags] { run_tune_command(*flags); });
}

}  // namespace kindred::cli
