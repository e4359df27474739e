// kindred train sft --config recipe.yaml [--resume] [key=value ...]: reads the recipe (overrides
// applied), opens the model, tokenizes the training (and dev) chat data with what the active
// objective terms need (head sites of emotion-only examples, the safety teacher's tokens), says what
// it trains, and runs train/sft.h in runs/<name>/. Under mpirun/srun (or torchrun on GPUs) every
// rank runs this command and training is data parallel (docs/distributed.md); rank 0 alone prints
// and writes, and an Error on any rank stops the whole job naming it.
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "core/config.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "infer/loaded_model.h"
#include "train/chat_dataset.h"
#include "train/data_parallel.h"
#include "train/dev_eval.h"
#include "train/recipe.h"
#include "train/sft.h"
#include "train/training_run.h"

namespace kindred::cli {
namespace {

struct TrainOptions : RankOptions {
    std::string config;
    bool resume = false;
    std::vector<std::string> overrides;
};

// "LM 1, emotion 0.5, strategy off (switch), ..." : each term's weight or why it is off.
std::string objective_summary(const train::SftRecipe& recipe) {
    const auto term = [](const char* name, double lambda, bool switched_on) {
        if (!switched_on) return fmt::format("{} off (switch)", name);
        return lambda > 0.0 ? fmt::format("{} {:g}", name, lambda) : fmt::format("{} off", name);
    };
    const auto& o = recipe.objective;
    std::string text = fmt::format("{}, {}, {}, {}, {}", term("LM", o.lm, true), term("emotion", o.emotion, recipe.heads.emotion),
                                   term("strategy", o.strategy, recipe.heads.strategy),
                                   term("valence/arousal", o.valence_arousal, recipe.heads.valence_arousal),
                                   term("safety KL", o.safety_kl, recipe.safety.enabled));
    if (train::safety_active(recipe))
        text += fmt::format(" (teacher: frozen base with {} rules, tau {:g}, top-{})",
                            recipe.safety.rules == "default" ? "the default" : "the recipe's", recipe.safety.temperature,
                            recipe.safety.top_k);
    return text;
}

void run_train(const TrainOptions& options, dist::Communicator& communicator) {
    const bool root = communicator.is_root();
    Config config = Config::load(options.config);
    config.apply_overrides(options.overrides);
    const train::SftRecipe recipe = train::read_sft_recipe(config);

    const auto model = infer::LoadedModel::open(recipe.model, "", recipe.quantize);
    const train::DataParallel parallel(&communicator);
    if (parallel.active()) parallel.require_same("the model files", train::model_fingerprint(model->path()));
    train::ChatDatasetOptions data_options;
    data_options.max_seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    data_options.context_length = static_cast<std::size_t>(model->decoder().config().context_length);
    // Emotion-only lines (GoEmotions) only feed the emotion head; the teacher's tokens only the KL.
    data_options.keep_emotion_only = train::emotion_active(recipe);
    data_options.emotion_space = recipe.heads.emotion_space;
    data_options.teacher_rules = train::safety_rules_text(recipe);
    data_options.style = recipe.style;
    const auto& chat = model->require_chat_template();
    const auto dataset = train::load_chat_dataset(recipe.data_path, model->tokenizer(), chat, data_options);
    if (root)
        for (const auto& line : train::warnings(dataset, data_options)) fmt::print(stderr, "warning: {}\n", line);
    if (dataset.examples.empty()) fail("{}: no usable conversations", recipe.data_path);
    std::optional<train::ChatDataset> dev;
    if (!recipe.dev_path.empty()) {
        dev = train::load_chat_dataset(recipe.dev_path, model->tokenizer(), chat, data_options);
        if (root)
            for (const auto& line : train::warnings(*dev, data_options)) fmt::print(stderr, "warning: {}\n", line);
    }

    train::SftOptions sft;
    sft.run_dir = parallel.root_value(train::run_directory(recipe, options.resume));
    sft.resume = options.resume;
    sft.base_model = model->path();
    sft.styles = dataset.styles;
    sft.pad_id = model->tokenizer().eos_id().value_or(0);
    sft.emotion_system_prompt = dataset.stats.emotion_system_prompt;
    if (dev) sft.dev = dev->examples;
    sft.communicator = &communicator;
    if (root) {
        if (communicator.size() > 1)
            fmt::print(stderr, "data parallel: {} ranks over {}, {} threads each\n", communicator.size(),
                       communicator.backend(), thread_pool().size());
        fmt::print(stderr, "run {}: {} examples ({} target tokens, {} head sites), {} steps\n", sft.run_dir,
                   dataset.examples.size(), dataset.stats.target_tokens, dataset.stats.sites, recipe.max_steps);
        fmt::print(stderr, "objective: {}\n", objective_summary(recipe));
        if (dev)
            fmt::print(stderr, "dev: {} examples from {}{}\n", dev->examples.size(), recipe.dev_path,
                       recipe.evaluation.max_examples > 0 ? fmt::format(" (first {} used)", recipe.evaluation.max_examples)
                                                          : "");
    }
    const auto result = train::run_sft(recipe, model->decoder(), dataset.examples, sft);
    if (!root) return;
    if (result.losses.empty()) {
        fmt::print("{}: already complete at step {}\n", sft.run_dir, result.last_step);
        return;
    }
    fmt::print("{}: steps {}..{}, loss {:.4f} -> {:.4f}, {:.0f} tokens/s, {:.1f} s{}\n", sft.run_dir, result.first_step + 1,
               result.last_step, result.losses.front(), result.losses.back(), result.tokens_per_s, result.elapsed_s,
               result.skipped_steps > 0 ? fmt::format(", {} steps skipped", result.skipped_steps) : "");
    // Each term's first and last value (a term can miss a step that had nothing to count).
    const std::pair<const char*, double train::StepLosses::*> terms[] = {
        {"lm", &train::StepLosses::lm},
        {"emotion", &train::StepLosses::emotion},
        {"strategy", &train::StepLosses::strategy},
        {"va", &train::StepLosses::valence_arousal},
        {"safety", &train::StepLosses::safety}};
    std::string components;
    for (const auto& [name, member] : terms) {
        std::vector<double> values;
        for (const auto& step : result.components)
            if (std::isfinite(step.*member)) values.push_back(step.*member);
        if (!values.empty())
            components += fmt::format("{}{} {:.4f} -> {:.4f}", components.empty() ? "" : ", ", name, values.front(), values.back());
    }
    if (!components.empty()) fmt::print("components: {}\n", components);
    if (result.teacher_cached_bytes > 0)
        fmt::print("safety teacher cache: {:.1f} KB; forwards ran {} input tokens, shared prefixes spared {}\n",
                   static_cast<double>(result.teacher_cached_bytes) / 1e3, result.teacher_forwarded_tokens,
                   result.teacher_reused_tokens);
    if (result.final_dev) fmt::print("dev: {}\n", train::to_json(*result.final_dev).dump());
}

}  // namespace

void add_train_command(CLI::App& app) {
    auto* train = app.add_subcommand("train", "Fine-tune a model");
    train->require_subcommand(1);
    auto options = std::make_shared<TrainOptions>();
    auto* sft = train->add_subcommand("sft", "Supervised fine-tuning of a LoRA adapter on chat JSONL");
    sft->add_option("--config", options->config, "Recipe YAML (see configs/smollm2-lora.yaml)")->required();
    sft->add_flag("--resume", options->resume, "Continue the run from its latest checkpoint");
    sft->add_option("overrides", options->overrides, "key=value recipe overrides (e.g. optimisation.lr=1e-4)");
    add_rank_options(*sft, *options);
    sft->callback([options] { run_on_ranks(*options, [&](dist::Communicator& communicator) { run_train(*options, communicator); }); });
    add_train_dpo_command(*train);
}

}  // namespace kindred::cli
