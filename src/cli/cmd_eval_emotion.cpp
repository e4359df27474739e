// kindred eval emotion: an emotion head (an adapter folder from `kindred train sft`) scored on a
// GoEmotions-format TSV in the original 28-label space: macro-F1, micro-F1 and per-label scores
// (train/emotion_eval.h, eval/goemotions_eval.h).
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/emotion_head.h"
#include "cli/ranks.h"
#include "core/error.h"

namespace kindred::cli {
namespace {

struct EmotionEvalOptions {
    std::string model = "default";
    std::string adapter;
    std::string data;
    std::optional<std::string> system_prompt;
    std::optional<double> threshold;
    std::size_t max_seq_len = 512;
    int threads = 0;
    bool json = false;
};

void print_report(const EmotionHeadScores& scores, const EmotionEvalOptions& options, double seconds) {
    const eval::GoEmotionsReport& report = scores.report;
    const auto threshold = [&]() -> nlohmann::ordered_json {
        return std::isnan(report.threshold) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(report.threshold);
    };
    if (options.json) {
        nlohmann::ordered_json labels = nlohmann::ordered_json::object();
        for (const auto& label : report.labels)
            labels[label.label] = {{"precision", label.precision}, {"recall", label.recall}, {"f1", label.f1},
                                   {"support", label.support}, {"predicted", label.predicted}};
        const nlohmann::ordered_json out = {
            {"data", options.data},
            {"examples", report.examples},
            {"head_labels", report.head_space},
            {"activation", scores.activation},
            {"threshold", threshold()},
            {"macro_f1", report.macro_f1},
            {"micro_f1", report.micro_f1},
            {"labels", labels},
            {"seconds", seconds},
        };
        fmt::print("{}\n", out.dump(2));
        return;
    }
    fmt::print("{}: {} examples, {} head ({}), threshold {}\n", options.data, report.examples, report.head_space, scores.activation,
               std::isnan(report.threshold) ? std::string("none (half the top probability)")
                                            : fmt::format("{:.2f}", report.threshold));
    fmt::print("macro-F1 {:.4f}  micro-F1 {:.4f}  (28 GoEmotions labels)  in {:.0f} s\n", report.macro_f1, report.micro_f1,
               seconds);
    fmt::print("{:<16} {:>9} {:>7} {:>7} {:>8} {:>9}\n", "label", "precision", "recall", "f1", "support", "predicted");
    for (const auto& label : report.labels)
        fmt::print("{:<16} {:>9.4f} {:>7.4f} {:>7.4f} {:>8} {:>9}\n", label.label, label.precision, label.recall, label.f1,
                   label.support, label.predicted);
}

void run_eval_emotion(const EmotionEvalOptions& options) {
    apply_threads_flag(options.threads);
    if (options.threshold && !(*options.threshold > 0.0 && *options.threshold < 1.0))
        fail("--threshold must lie in (0, 1), got {}", *options.threshold);
    EmotionHeadRequest request;
    request.model = options.model;
    request.adapter = options.adapter;
    request.data = options.data;
    request.system_prompt = options.system_prompt;
    request.threshold = options.threshold;
    request.max_seq_len = options.max_seq_len;
    const auto start = std::chrono::steady_clock::now();
    const EmotionHeadScores scores = score_emotion_head(request);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    print_report(scores, options, seconds);
}

}  // namespace

void add_eval_emotion_command(CLI::App& eval) {
    auto options = std::make_shared<EmotionEvalOptions>();
    CLI::App* emotion = eval.add_subcommand(
        "emotion", "An emotion head on a GoEmotions-format TSV: macro/micro-F1 and per-label F1 in the 28-label space");
    emotion->add_option("--model", options->model, "GGUF base model the head was trained on, or `default`")->capture_default_str();
    emotion->add_option("--adapter", options->adapter, "Trained adapter folder (heads.json, heads.safetensors; PEFT files when LoRA was trained)")
        ->required()
        ->check(CLI::ExistingDirectory);
    emotion->add_option("--data", options->data, "GoEmotions-format TSV: text, comma-separated label ids 0..27, comment id")
        ->required()
        ->check(CLI::ExistingFile);
    emotion->add_option("--system-prompt", options->system_prompt,
                        "System message of each comment (default: the one the head was trained with, from heads.json; else `kindred data prepare`'s persona line)");
    emotion->add_option("--threshold", options->threshold, "Decision threshold (default: the one chosen on dev, in heads.json)");
    emotion->add_option("--max-seq-len", options->max_seq_len, "Tokens per packed row; a longer comment is an error")->capture_default_str();
    emotion->add_option("--threads", options->threads, "CPU threads (0 = KINDRED_THREADS or every core)");
    emotion->add_flag("--json", options->json, "Print macro_f1, micro_f1 and per-label scores as JSON");
    emotion->callback([options] { run_eval_emotion(*options); });
}

}  // namespace kindred::cli
