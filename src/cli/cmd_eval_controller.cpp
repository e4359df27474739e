// kindred eval controller --model M [--adapter DIR] --prompts FILE: the prompt set answered with and
// without the decoding controller, by the base model and (with --adapter) the tuned one, scored by
// the reply checker and the safety rules (eval/controller_eval.h, docs/controller.md). Decoding
// defaults to the recommended settings and seed 0, so a run is reproducible.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/controller_flags.h"
#include "cli/generation_flags.h"
#include "cli/kv_cache_flag.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/controller_eval.h"
#include "infer/loaded_model.h"

namespace kindred::cli {
namespace {

struct EvalControllerOptions {
    GenerationFlags flags;
    ControllerFlags controller;
    std::string prompts;
    std::size_t limit = 0;
    std::string out;
    bool json = false;
    bool plain_only = false;
    bool no_base = false;
};

std::vector<eval::PromptResult> run_one(infer::LoadedModel& model, const std::string& label, const std::vector<eval::ControllerPrompt>& prompts,
                                        const eval::ControllerEvalOptions& options, const data::SafetyRules& rules) {
    ProgressOptions progress_options;
    progress_options.label = label;
    const std::size_t count = options.limit > 0 ? std::min(options.limit, prompts.size()) : prompts.size();
    Progress progress(static_cast<std::int64_t>(count), progress_options);
    auto results = eval::run_controller_eval(model, prompts, options, rules,
                                             [&](std::size_t done, std::size_t) { progress.update(static_cast<std::int64_t>(done)); });
    progress.finish();
    return results;
}

void run_eval_controller(EvalControllerOptions& options) {
    apply_generation_flags(options.flags);
    auto model = infer::LoadedModel::open(options.flags.model, options.flags.adapter, kindred::model::BaseQuantization::None,
                                            options.flags.products, options.flags.kv_cache);
    report_kv_cache(model->decoder());
    ControllerSetup setup = controller_setup(options.controller, *model, options.flags);
    const auto prompts = eval::read_controller_prompts(options.prompts);
    eval::check_prompt_rules(prompts, *setup.rules, options.prompts);
    eval::ControllerEvalOptions eval_options;
    eval_options.controller = setup.options;
    eval_options.seed = options.flags.sampling.seed;
    eval_options.limit = options.limit;
    eval_options.with_controller = !options.plain_only;

    std::vector<std::pair<std::string, std::vector<eval::PromptResult>>> runs;
    if (options.no_base && options.flags.adapter.empty()) fail("--no-base needs --adapter: without one there is only the base model");
    if (!options.flags.adapter.empty() && !options.no_base) {
        const model::Decoder::AdapterDetached base(model->decoder());
        // The base model never saw a style: it answers without one.
        eval::ControllerEvalOptions base_options = eval_options;
        base_options.controller.style.reset();
        runs.emplace_back("base", run_one(*model, "base", prompts, base_options, *setup.rules));
    }
    runs.emplace_back(options.flags.adapter.empty() ? "model" : "tuned",
                      run_one(*model, options.flags.adapter.empty() ? "model" : "tuned", prompts, eval_options, *setup.rules));

    std::vector<eval::ControllerSummary> summaries;
    for (const auto& [label, results] : runs) summaries.push_back(eval::summarize(label, results, !options.plain_only));
    if (!options.out.empty()) {
        std::string lines;
        for (const auto& [label, results] : runs) {
            for (const auto& result : results) {
                nlohmann::ordered_json line = {{"model", label}};
                line.update(eval::to_json(result));
                lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            }
        }
        write_file_atomically(options.out, lines);
    }
    if (options.json) {
        nlohmann::ordered_json out = nlohmann::ordered_json::array();
        for (const auto& summary : summaries) out.push_back(eval::to_json(summary));
        fmt::print("{}\n", out.dump(2));
        return;
    }
    fmt::print("{}", eval::controller_tables(summaries));
}

}  // namespace

void add_eval_controller_command(CLI::App& eval) {
    auto options = std::make_shared<EvalControllerOptions>();
    options->flags.max_tokens = 120;
    options->flags.sampling = infer::recommended_sampling();
    options->flags.seed = "0";
    CLI::App* command = eval.add_subcommand(
        "controller", "Prompt set with and without the decoding controller: checker properties, safety triggers, latency");
    add_generation_flags(*command, options->flags);
    command->add_option("--prompts", options->prompts, "Prompt set, JSONL (docs/controller.md; data/controller/prompts.jsonl)")
        ->required()
        ->check(CLI::ExistingFile);
    command->add_option("--limit", options->limit, "Only the first N prompts (0 = all)");
    command->add_option("--out", options->out, "Write every prompt's replies, judgements and full controller log here (JSONL)");
    command->add_flag("--json", options->json, "Print the summaries as JSON instead of tables");
    command->add_flag("--plain-only", options->plain_only, "Only the replies without the controller (for decoding sweeps)");
    command->add_flag("--no-base", options->no_base, "With --adapter: only the tuned model (the base pass is skipped)");
    add_controller_flags(*command, options->controller, /*with_switch=*/false);
    command->callback([options] { run_eval_controller(*options); });
}

}  // namespace kindred::cli
