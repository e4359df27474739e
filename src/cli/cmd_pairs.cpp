// kindred pairs build --config recipe.yaml [key=value ...]: the preference pairs of a DPO recipe's
// `pairs:` section (train/pairs_build.h, docs/dpo.md), sampled with the base model and the
// reference adapter, judged (when the judge source is on) by an OpenAI-compatible endpoint.
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "cli/ranks.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "infer/loaded_model.h"
#include "net/openai_chat.h"
#include "train/dpo.h"
#include "train/pairs_build.h"

namespace kindred::cli {
namespace {

struct PairsFlags {
    std::string config;
    std::vector<std::string> overrides;
    int threads = 0;
};

// The judge of source (b): net/'s OpenAI-compatible client at the recipe's endpoint, greedy, the
// key (if any) from the environment variable the recipe names.
train::JudgeCall make_judge(const train::JudgeSettings& settings) {
    net::ChatEndpoint endpoint;
    endpoint.base_url = settings.url;
    endpoint.model = settings.model;
    if (const char* key = std::getenv(settings.api_key_env.c_str()); key != nullptr) endpoint.api_key = key;
    endpoint.http.timeout_s = settings.timeout_s;
    endpoint.http.max_attempts = static_cast<int>(settings.max_retries + 1);
    auto client = std::make_shared<net::ChatClient>(std::move(endpoint));
    return [client](const std::string& system, const std::string& user) {
        net::ChatCompletionRequest request;
        if (!system.empty()) request.messages.push_back({"system", system});
        request.messages.push_back({"user", user});
        request.temperature = 0.0;
        request.max_tokens = 512;  // room for a judge that reasons before its verdict
        return client->complete(request).content;
    };
}

std::string counts_text(const train::SourceCounts& c) {
    return fmt::format("{} made, {} cut at max_tokens, {} empty, {} identical, {} tied, {} verdicts cached", c.made,
                       c.truncated, c.empty, c.identical, c.tied, c.cached);
}

void run_pairs_build(const PairsFlags& flags) {
    apply_threads_flag(flags.threads);
    Config config = Config::load(flags.config);
    config.apply_overrides(flags.overrides);
    const train::DpoRecipe recipe = train::read_dpo_recipe(config);
    const auto model = infer::LoadedModel::open(recipe.run.model, recipe.reference, recipe.run.quantize);
    train::JudgeCall judge;
    if (recipe.pairs.judge.enabled) judge = make_judge(recipe.pairs.judge);
    const auto report = train::build_pairs(recipe.pairs, *model, judge,
                                           [](const std::string& line) { fmt::print(stderr, "{}\n", line); });
    fmt::print("{}: {} pairs from {} prompts", recipe.pairs.out, report.pairs, report.prompts);
    if (!recipe.pairs.dev_out.empty()) fmt::print("; {}: {} pairs from {} prompts", recipe.pairs.dev_out, report.dev_pairs, report.dev_prompts);
    fmt::print(" ({:.1f} s, {} tokens sampled)\n", report.seconds, report.sampled_tokens);
    if (recipe.pairs.gold_vs_model) fmt::print("  gold vs model: {}\n", counts_text(report.gold_vs_model));
    if (recipe.pairs.judge.enabled) fmt::print("  judge: {}\n", counts_text(report.judge));
    if (recipe.pairs.safety) fmt::print("  safety: {} made\n", report.safety.made);
}

}  // namespace

void add_pairs_command(CLI::App& app) {
    auto* pairs = app.add_subcommand("pairs", "Preference pairs for DPO");
    pairs->require_subcommand(1);
    auto flags = std::make_shared<PairsFlags>();
    auto* build = pairs->add_subcommand("build", "Write the preference pairs of a DPO recipe's `pairs:` section");
    build->add_option("--config", flags->config, "DPO recipe YAML (see configs/smollm2-dpo.yaml)")->required();
    build->add_option("--threads", flags->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    build->add_option("overrides", flags->overrides, "key=value recipe overrides (e.g. pairs.max_prompts=32)");
    build->callback([flags] { run_pairs_build(*flags); });
}

}  // namespace kindred::cli
