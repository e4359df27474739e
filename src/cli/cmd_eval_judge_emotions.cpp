// kindred eval judge-emotions: the judge consistency check (eval/judge_emotions.h; docs/eval.md).
// The judge endpoint labels a reproducible sample of GoEmotions comments; its macro-F1 against the
// gold labels is printed beside the always-neutral floor and, with --adapter, the emotion head's on
// the same comments.
#include <chrono>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/endpoint_flags.h"
#include "cli/judge_check.h"
#include "cli/ranks.h"
#include "core/error.h"

namespace kindred::cli {
namespace {

struct JudgeEmotionsFlags {
    EndpointFlags judge;
    std::string data;
    std::int64_t sample = 200;
    std::uint64_t seed = 0;
    std::string model = "default";
    std::string adapter;
    std::string out;
    bool resume = false;
    bool json = false;
    int judge_attempts = 3;
    std::int64_t max_tokens = 512;
    std::size_t max_seq_len = 512;
    int threads = 0;
};

void run(const JudgeEmotionsFlags& flags) {
    apply_threads_flag(flags.threads);
    if (flags.sample < 1) fail("--sample must be at least 1, got {}", flags.sample);
    if (flags.resume && flags.out.empty()) fail("--resume needs --out RUN_DIR: the run to continue");
    auto client = endpoint_client(flags.judge, "the judge (--judge-url, --judge-model)");
    JudgeCheckRequest request;
    request.data = flags.data;
    request.sample = static_cast<std::size_t>(flags.sample);
    request.run.out = flags.out.empty() ? fmt::format("runs/judge-emotions-{:%Y%m%d-%H%M%S}", std::chrono::system_clock::now()) : flags.out;
    request.run.resume = flags.resume;
    request.run.seed = flags.seed;
    request.run.judge_identity = endpoint_identity(flags.judge);
    request.run.info = {{"url", flags.judge.url}};
    request.run.judge_attempts = flags.judge_attempts;
    request.run.max_tokens = flags.max_tokens;
    request.model = flags.model;
    request.adapter = flags.adapter;
    request.max_seq_len = flags.max_seq_len;
    const JudgeCheck check = run_judge_check(request, eval::eqbench3_endpoint_chat(*client));
    const eval::JudgeEmotionsResult& result = check.result;
    if (flags.json) {
        nlohmann::ordered_json out = eval::judge_emotions_json(result, check.head ? &check.head->report : nullptr);
        out.erase("items");  // in results.json; the printed summary stays short
        out["data"] = check.file.path;
        out["seed"] = flags.seed;
        out["run_dir"] = request.run.out;
        out["judge_seconds"] = check.judge_seconds;
        out["judge_usage"] = usage_json(*client);
        fmt::print("{}\n", out.dump(2));
        return;
    }
    const auto figure = [](const std::optional<eval::GoEmotionsReport>& report) {
        return report ? fmt::format("macro-F1 {:.4f}, micro-F1 {:.4f}", report->macro_f1, report->micro_f1) : std::string("n/a");
    };
    fmt::print("judge {} on {} of {} comments of {} (seed {}; {} failed, {} unparsed answers, {} calls this run, {:.0f} s): {}\n",
               flags.judge.model, result.labelled, result.sample, check.file.path, flags.seed, result.failed, result.unparsed_answers,
               result.judge_calls, check.judge_seconds, figure(result.judge));
    fmt::print("always \"neutral\" on the same comments: {}\n", figure(result.neutral));
    if (check.head) {
        fmt::print("emotion head of {} ({} labels, {}): {}\n", flags.adapter, check.head->report.head_space, check.head->activation,
                   figure(check.head->report));
    }
    fmt::print("(per-label scores and every answer: {}/results.json, answers.jsonl)\n", request.run.out);
}

}  // namespace

void add_eval_judge_emotions_command(CLI::App& eval) {
    auto flags = std::make_shared<JudgeEmotionsFlags>();
    CLI::App* command = eval.add_subcommand(
        "judge-emotions", "Judge consistency check: a judge endpoint labels GoEmotions comments; its macro-F1 beside an emotion head's");
    add_judge_endpoint_flags(command, flags->judge);
    command->add_option("--data", flags->data, "GoEmotions-format TSV, or a folder holding dev.tsv (e.g. ../shared/goemotions)")->required();
    command->add_option("--sample", flags->sample, "Comments drawn from it (reproducible for a given --seed)")->capture_default_str();
    command->add_option("--seed", flags->seed, "Seed of the sample (and of retried answers)")->capture_default_str();
    command->add_option("--model", flags->model, "GGUF base model the --adapter's head was trained on, or `default`")->capture_default_str();
    command->add_option("--adapter", flags->adapter, "Adapter folder with an emotion head, scored on the same comments")
        ->check(CLI::ExistingDirectory);
    command->add_option("--out", flags->out, "Run directory (default runs/judge-emotions-<time>)");
    command->add_flag("--resume", flags->resume, "Continue the run in --out: no comment already answered is asked again");
    command->add_option("--judge-attempts", flags->judge_attempts, "Answers per comment before an unreadable one is recorded as failed")
        ->capture_default_str();
    command->add_option("--judge-max-tokens", flags->max_tokens, "Token budget of one answer")->capture_default_str();
    command->add_option("--max-seq-len", flags->max_seq_len, "Tokens per packed row when scoring the head")->capture_default_str();
    command->add_option("--threads", flags->threads, "CPU threads for the head (0 = KINDRED_THREADS or every core)");
    command->add_flag("--json", flags->json, "Print the judge's, the floor's and the head's scores (per label too) as JSON");
    command->callback([flags] { run(*flags); });
}

}  // namespace kindred::cli
