// cli/cmd_data.cpp — `kindred data prepare`: flags in, data::prepare_corpus out, a summary printed.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "data/prepare.h"

namespace kindred::cli {
namespace {

struct DataPrepareFlags {
    std::string ed;
    std::string esconv;
    std::string goemotions;
    double alpha = 0.5;
    std::uint64_t seed = 0;
    std::string on_error = "fail";
    std::string style_tokens;
    std::string style_placement = "system";
    std::string system_prompt;
    std::size_t train_examples = 0;
    std::string out;
};

void run_prepare(const DataPrepareFlags& flags) {
    data::PrepareOptions options;
    if (!flags.ed.empty()) options.empathetic_dialogues = flags.ed;
    if (!flags.esconv.empty()) options.esconv = flags.esconv;
    if (!flags.goemotions.empty()) options.goemotions = flags.goemotions;
    options.alpha = flags.alpha;
    options.seed = flags.seed;
    if (flags.on_error == "fail") {
        options.load.on_error = data::ErrorPolicy::Fail;
    } else if (flags.on_error == "skip") {
        options.load.on_error = data::ErrorPolicy::Skip;
    } else {
        fail("--on-error '{}' is neither 'fail' nor 'skip'", flags.on_error);
    }
    const auto placement = data::parse_style_placement(flags.style_placement);
    if (!flags.style_tokens.empty()) options.style = data::parse_style_tokens(flags.style_tokens, placement);
    if (!flags.system_prompt.empty()) options.load.system_prompt = flags.system_prompt;
    if (flags.train_examples > 0) options.train_examples = flags.train_examples;
    options.out_dir = flags.out;
    options.progress = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };

    const auto report = data::prepare_corpus(options);
    for (const auto& stats : report.sources) {
        std::size_t examples = 0;
        for (const auto& [split, counts] : stats.splits) examples += counts.examples;
        fmt::print("{}: {} examples, {} dropped\n", stats.source, examples, stats.dropped.size());
    }
    for (const auto& entry : report.mixture) {
        fmt::print("mixture {}: p={:.4f} draws={}\n", entry.source, entry.probability, entry.draws);
    }
    fmt::print("wrote {}/train.jsonl ({}), dev.jsonl ({}), test.jsonl ({}), data_card.json, data_card.md\n", flags.out,
               report.shard_lines.at("train"), report.shard_lines.at("dev"), report.shard_lines.at("test"));
}

}  // namespace

void add_data_command(CLI::App& app) {
    auto* data = app.add_subcommand("data", "Prepare training data from EmpatheticDialogues, ESConv and GoEmotions");
    data->require_subcommand(1);
    auto flags = std::make_shared<DataPrepareFlags>();
    auto* prepare = data->add_subcommand("prepare", "Convert released dataset files into train/dev/test JSONL shards and data cards");
    prepare->add_option("--ed", flags->ed, "EmpatheticDialogues directory (train.csv, valid.csv, test.csv)")->check(CLI::ExistingDirectory);
    prepare->add_option("--esconv", flags->esconv, "ESConv.json, or the thu-coai/esconv JSON-lines file")->check(CLI::ExistingFile);
    prepare->add_option("--goemotions", flags->goemotions, "GoEmotions directory (train.tsv, dev.tsv and optionally test.tsv; or its data/)")->check(CLI::ExistingDirectory);
    prepare->add_option("--alpha", flags->alpha, "Mixture temperature: p_i = n_i^alpha / sum n_j^alpha, alpha in (0, 1]")->capture_default_str();
    prepare->add_option("--seed", flags->seed, "Seed of the train mixture and its permutations")->capture_default_str();
    prepare->add_option("--on-error", flags->on_error, "fail: stop at the first bad record; skip: drop it and list it in the data card")->capture_default_str();
    prepare->add_option("--style-tokens", flags->style_tokens, "Style tags placed as plain text, e.g. <tone:warm><persona:best_friend>");
    prepare->add_option("--style-placement", flags->style_placement, "Where style tags go: system (system message) or assistant (each target turn)")->capture_default_str();
    prepare->add_option("--system-prompt", flags->system_prompt, "System message of every example (default: Kindred's persona line)");
    prepare->add_option("--train-examples", flags->train_examples, "Number of mixture draws in train.jsonl (default: all train examples)");
    prepare->add_option("--out", flags->out, "Output directory")->required();
    prepare->callback([flags] { run_prepare(*flags); });
    add_data_fetch_command(*data);
}

}  // namespace kindred::cli
