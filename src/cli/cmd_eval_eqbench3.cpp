// kindred eval eqbench3 [compare]: EQ-Bench 3 with the official prompts, settings, scoring and
// Elo (eval/eqbench3*.h; docs/eval.md). The tested model runs inside Kindred (--model) or behind
// any OpenAI-compatible endpoint (--model-url); the judge is always an endpoint (--judge-url).
#include <chrono>
#include <filesystem>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/endpoint_flags.h"
#include "cli/kv_cache_flag.h"
#include "cli/products_flag.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/thread_pool.h"
#include "eval/eqbench3.h"
#include "eval/eqbench3_run.h"
#include "infer/loaded_model.h"
#include "net/http.h"
#include "net/openai_chat.h"

namespace kindred::cli {
namespace {

struct Eqb3Flags {
    std::string data;
    std::string model;
    std::string adapter;
    EndpointFlags tested;
    EndpointFlags judge;
    std::string scenarios;
    std::string out;
    std::string name;
    bool resume = false;
    bool json = false;
    std::uint64_t seed = 0;
    std::int64_t max_tokens = eval::kEqBench3ReplyMaxTokens;
    int judge_attempts = 3;
    int threads = 0;
    kernels::Precision products = default_inference_products();
    DType kv_cache = DType::F32;
    std::vector<std::string> compare_runs;
};

void run(const Eqb3Flags& flags) {
    const bool local = !flags.model.empty();
    if (local == !flags.tested.url.empty()) fail("give the tested model: --model M (run here) or --model-url URL (an OpenAI-compatible endpoint)");
    if (!local && !flags.adapter.empty()) fail("--adapter applies to --model (a model run here), not to --model-url");
    if (flags.resume && flags.out.empty()) fail("--resume needs --out RUN_DIR: the run to continue");
    if (flags.data.empty()) fail("give --data DIR: the EQ-Bench 3 data files (e.g. ../shared/eqbench3)");
    if (flags.threads > 0) set_thread_count(flags.threads);
    const eval::Eqb3Data data = eval::load_eqbench3_data(flags.data);
    auto judge_client = endpoint_client(flags.judge, "the judge (--judge-url, --judge-model)");

    eval::Eqb3RunOptions options;
    options.out = flags.out.empty() ? fmt::format("runs/eqbench3-{:%Y%m%d-%H%M%S}", std::chrono::system_clock::now()) : flags.out;
    options.resume = flags.resume;
    options.scenarios = eval::eqbench3_split_ids(flags.scenarios);
    options.seed = flags.seed;
    options.max_reply_tokens = flags.max_tokens;
    options.judge_attempts = flags.judge_attempts;
    options.progress = true;

    std::unique_ptr<infer::LoadedModel> model;
    std::unique_ptr<net::ChatClient> tested_client;
    eval::Eqb3Chat tested;
    nlohmann::json model_identity;
    if (local) {
        model = infer::LoadedModel::open(flags.model, flags.adapter, kindred::model::BaseQuantization::None, flags.products,
                                         flags.kv_cache);
        report_kv_cache(model->decoder());
        tested = eval::eqbench3_local_chat(*model);
        model_identity = {{"path", model->path()}, {"sha256", net::sha256_file(model->path())}};
        if (!flags.adapter.empty()) {
            nlohmann::json files = nlohmann::json::object();
            for (const auto& entry : std::filesystem::directory_iterator(flags.adapter)) {
                if (entry.is_regular_file()) files[entry.path().filename().string()] = net::sha256_file(entry.path().string());
            }
            model_identity["adapter"] = {{"path", flags.adapter}, {"files", files}};
        }
        options.name = flags.name.empty() ? std::filesystem::path(model->path()).stem().string() +
                                                (flags.adapter.empty() ? "" : "+" + std::filesystem::path(flags.adapter).filename().string())
                                          : flags.name;
    } else {
        tested_client = endpoint_client(flags.tested, "the tested model (--model-url, --model-name)");
        tested = eval::eqbench3_endpoint_chat(*tested_client);
        model_identity = endpoint_identity(flags.tested);
        options.name = flags.name.empty() ? flags.tested.model : flags.name;
    }
    options.identity = {{"model", model_identity}, {"judge", endpoint_identity(flags.judge)}};
    options.info = {{"judge_url", flags.judge.url}};
    if (!local) options.info["model_url"] = flags.tested.url;
    for (const auto& skipped : data.scenarios.skipped) {
        fmt::print(stderr, "eqbench3: scenario {} (line {}) is skipped, as the official parser skips it: {}\n", skipped.id, skipped.line,
                   skipped.reason);
    }

    const auto start = std::chrono::steady_clock::now();
    const eval::Eqb3RunResult result = eval::run_eqbench3(data, tested, eval::eqbench3_endpoint_chat(*judge_client), options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (flags.json) {
        nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
        for (const auto& s : data.scenarios.skipped) skipped.push_back({{"id", s.id}, {"line", s.line}, {"reason", s.reason}});
        nlohmann::ordered_json out = {{"rubric_score", result.rubric_score ? nlohmann::ordered_json(*result.rubric_score) : nullptr},
                                      {"rubric_score_0_20", result.rubric_score_0_20 ? nlohmann::ordered_json(*result.rubric_score_0_20) : nullptr},
                                      {"scenarios", result.scenarios},
                                      {"scored", result.scored},
                                      {"name", result.name},
                                      {"run_dir", options.out},
                                      {"replies_generated", result.replies_generated},
                                      {"judge_calls", result.judge_calls},
                                      {"replies_total", result.replies_total},
                                      {"judge_answers_total", result.judge_answers_total},
                                      {"out_of_range_scores", result.out_of_range},
                                      {"seconds", seconds},
                                      {"judge_usage", usage_json(*judge_client)},
                                      {"skipped_scenarios", skipped}};
        if (tested_client) out["model_usage"] = usage_json(*tested_client);
        fmt::print("{}\n", out.dump(2));
        return;
    }
    fmt::print("EQ-Bench 3 rubric score {} (0-100) for {}: {} of {} scenarios scored; {} replies and {} judge calls this run, {:.0f} s; {}\n",
               result.rubric_score ? fmt::format("{:.2f}", *result.rubric_score) : std::string("n/a"), result.name, result.scored,
               result.scenarios, result.replies_generated, result.judge_calls, seconds, options.out);
}

void compare(const Eqb3Flags& flags) {
    if (flags.data.empty()) fail("give --data DIR: the EQ-Bench 3 data files the runs were made with");
    const eval::Eqb3Data data = eval::load_eqbench3_data(flags.data);
    auto judge_client = endpoint_client(flags.judge, "the judge (--judge-url, --judge-model)");
    eval::Eqb3CompareOptions options;
    options.out = flags.out.empty() ? "eqbench3-compare" : flags.out;
    options.judge_attempts = flags.judge_attempts;
    options.judge_identity = {{"url", flags.judge.url}, {"model", flags.judge.model}};
    const eval::Eqb3CompareResult result = eval::eqbench3_compare(data, flags.compare_runs, eval::eqbench3_endpoint_chat(*judge_client), options);
    if (flags.json) {
        nlohmann::ordered_json rows = nlohmann::ordered_json::array();
        for (const auto& row : result.rows) {
            rows.push_back({{"name", row.name},
                            {"rubric_score", row.rubric_score ? nlohmann::ordered_json(*row.rubric_score) : nullptr},
                            {"scored", row.scored},
                            {"elo", row.elo.elo},
                            {"sigma", row.elo.sigma},
                            {"ci_low", row.elo.ci_low},
                            {"ci_high", row.elo.ci_high},
                            {"elo_norm", row.elo.elo_norm ? nlohmann::ordered_json(*row.elo.elo_norm) : nullptr}});
        }
        fmt::print("{}\n", nlohmann::ordered_json{{"runs", rows},
                                                   {"matches", result.matches},
                                                   {"failed_orders", result.failed},
                                                   {"judge_calls", result.judge_calls},
                                                   {"normalised", result.normalised},
                                                   {"judge_usage", usage_json(*judge_client)},
                                                   {"out", options.out}}
                                .dump(2));
        return;
    }
    fmt::print("{}\n(written to {}/compare.md, compare.json, criteria.svg)\n", result.markdown, options.out);
}

}  // namespace

void add_eqbench3_command(CLI::App& eval) {
    auto flags = std::make_shared<Eqb3Flags>();
    CLI::App* command = eval.add_subcommand("eqbench3", "EQ-Bench 3 (role-play, drafting and analysis scenarios scored by a judge model)");
    command->add_option("--data", flags->data, "The EQ-Bench 3 data files (scenario_prompts.txt, ...), e.g. ../shared/eqbench3");
    command->add_option("--model", flags->model, "GGUF model to test here, or `default` for the embedded SmolLM2-135M-Instruct");
    command->add_option("--adapter", flags->adapter, "PEFT LoRA adapter directory to apply over --model");
    command->add_option("--model-url", flags->tested.url, "Test a model behind an OpenAI-compatible endpoint instead (base URL)");
    command->add_option("--model-name", flags->tested.model, "Model name the --model-url endpoint serves");
    command->add_option("--model-key-env", flags->tested.key_env, "Environment variable holding the tested endpoint's API key");
    add_judge_endpoint_flags(command, flags->judge);
    command->add_option("--scenarios", flags->scenarios, "Comma-separated scenario ids (default: all 45 the official parser keeps)");
    command->add_option("--out", flags->out, "Run directory (default runs/eqbench3-<time>)");
    command->add_flag("--resume", flags->resume, "Continue the run in --out: nothing already answered is asked again");
    command->add_option("--name", flags->name, "The model's name in comparisons (default: model file and adapter names)");
    command->add_option("--seed", flags->seed, "Sampling seed for a model run here (default 0)");
    command->add_option("--max-tokens", flags->max_tokens, "Reply budget per turn (default 12000, the harness's; lower only for quick tries)");
    command->add_option("--judge-attempts", flags->judge_attempts, "Judge calls per item before an unparseable answer is recorded as failed (default 3)");
    command->add_option("--threads", flags->threads, "CPU threads (0 = KINDRED_THREADS or every core)");
    add_products_flag(*command, flags->products);
    add_kv_cache_flag(*command, flags->kv_cache);
    command->add_flag("--json", flags->json, "Print rubric_score (0-100), scenarios scored, call counts and usage as JSON");

    CLI::App* compare_command =
        command->add_subcommand("compare", "Pairwise-judge runs against each other: rubric score, Elo (TrueSkill) with 95% CI, per-criterion bars");
    compare_command->add_option("runs", flags->compare_runs, "Run directories (two or more)")->required()->expected(2, -1);
    compare_command->add_option("--data", flags->data, "The EQ-Bench 3 data files the runs were made with");
    add_judge_endpoint_flags(compare_command, flags->judge);
    compare_command->add_option("--out", flags->out, "Output directory (default eqbench3-compare)");
    compare_command->add_option("--judge-attempts", flags->judge_attempts, "Judge calls per order before it is recorded as failed (default 3)");
    compare_command->add_flag("--json", flags->json, "Print the table as JSON");
    compare_command->callback([flags] { compare(*flags); });
    command->callback([flags, compare_command] {
        if (!compare_command->parsed()) run(*flags);
    });
}

}  // namespace kindred::cli
