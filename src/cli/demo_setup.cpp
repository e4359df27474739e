// cli/demo_setup.cpp — presets, input search and report rows of `kindred demo` (demo_setup.h).
#include "cli/demo_setup.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/error.h"
#include "core/paths.h"
#include "data/labels.h"
#include "train/chat_dataset.h"

namespace kindred::cli {
namespace {

namespace fs = std::filesystem;

bool is_demo_root(const fs::path& folder) {
    std::error_code error;
    return fs::is_regular_file(folder / "configs" / "demo.yaml", error) && fs::is_directory(folder / "data" / "samples", error);
}

// `start` and its parents, nearest first.
std::optional<fs::path> root_above(const fs::path& start) {
    for (fs::path folder = start; !folder.empty(); folder = folder.parent_path()) {
        if (is_demo_root(folder)) return folder;
        if (folder == folder.parent_path()) break;
    }
    return std::nullopt;
}

std::optional<std::string> questions_in(const fs::path& folder) {
    std::error_code error;
    if (!fs::is_directory(folder, error)) return std::nullopt;
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(folder, error)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && name.starts_with("eq_bench_v2_questions") && name.ends_with(".json")) {
            found.push_back(entry.path().string());
        }
    }
    if (found.empty()) return std::nullopt;
    std::sort(found.begin(), found.end());
    return found.front();
}

std::string chance_note(std::size_t sites, std::size_t classes) {
    return fmt::format("{} dev sites; base has no head (uniform chance {:.3f})", sites, 1.0 / static_cast<double>(classes));
}

}  // namespace

DemoPlan demo_plan(bool quick) {
    // Measured budgets are in docs/demo.md; the EQ-Bench subset and the side-by-side replies are
    // what is left of 3 / 15 minutes after training on a 2-core machine.
    if (quick) return {true, "demo-quick.yaml", 10, 3, 64, "demo-dpo-quick.yaml"};
    return {false, "demo.yaml", 40, 5, 120, "demo-dpo.yaml"};
}

DemoData demo_data(const std::string& root, const std::string& data) {
    DemoData out;
    if (data.empty()) {
        const fs::path samples = fs::path(root) / "data" / "samples";
        out.sources.empathetic_dialogues = (samples / "empatheticdialogues").string();
        out.sources.esconv = (samples / "esconv" / "ESConv.json").string();
        out.sources.goemotions = (samples / "goemotions" / "data").string();
        out.description = "the bundled sample corpus (data/samples/, written for Kindred: 64 EmpatheticDialogues-style, "
                          "24 ESConv-style training conversations and 272 GoEmotions-style comments)";
        return out;
    }
    const fs::path folder(data);
    std::vector<std::string> found;
    std::error_code error;
    if (fs::is_regular_file(folder / "empatheticdialogues" / "train.csv", error)) {
        out.sources.empathetic_dialogues = (folder / "empatheticdialogues").string();
        found.push_back("EmpatheticDialogues");
    }
    if (fs::is_regular_file(folder / "esconv" / "ESConv.json", error)) {
        out.sources.esconv = (folder / "esconv" / "ESConv.json").string();
        found.push_back("ESConv");
    }
    if (fs::is_regular_file(folder / "goemotions" / "train.tsv", error)) {
        out.sources.goemotions = (folder / "goemotions").string();
        found.push_back("GoEmotions");
    }
    if (found.empty())
        fail("--data {}: no fetched dataset in it (expected empatheticdialogues/train.csv, esconv/ESConv.json or "
             "goemotions/train.tsv, as `kindred data fetch ed esconv goemotions --dir {}` writes them)", data, data);
    out.description = fmt::format("the released datasets fetched into {}: {}", data, fmt::join(found, ", "));
    return out;
}

std::vector<train::TokenizedExample> evenly_spaced(std::span<const train::TokenizedExample> examples, std::size_t count) {
    if (examples.size() <= count) return {examples.begin(), examples.end()};
    std::vector<train::TokenizedExample> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) out.push_back(examples[i * examples.size() / count]);
    return out;
}

std::string find_demo_root() {
    std::vector<std::string> searched;
    if (const char* root = std::getenv("KINDRED_ROOT"); root != nullptr && *root != '\0') {
        if (!is_demo_root(root)) fail("KINDRED_ROOT={} holds no configs/demo.yaml and data/samples/", root);
        return root;
    }
    std::error_code error;
    const fs::path executable = fs::read_symlink("/proc/self/exe", error);
    if (!error) {
        if (const auto root = root_above(executable.parent_path())) return root->string();
        searched.push_back(executable.parent_path().string() + " and its parents");
    }
    const fs::path here = fs::current_path(error);
    if (!error) {
        if (const auto root = root_above(here)) return root->string();
        searched.push_back(here.string() + " and its parents");
    }
    fail("kindred demo needs the Kindred folder (configs/demo.yaml and data/samples/); searched {}. Set KINDRED_ROOT to it",
         fmt::join(searched, ", "));
}

std::optional<std::string> find_eqbench_questions(const std::string& given,
                                                  std::vector<std::string>& searched) {
    if (!given.empty()) {
        if (!fs::is_regular_file(given)) fail("--questions: file '{}' not found", given);
        searched.push_back(given);
        return given;
    }
    for (const fs::path& folder : {fs::path(kindred_home()) / "eqbench-v2"}) {
        searched.push_back(folder.lexically_normal().string());
        if (auto found = questions_in(folder)) return found;
    }
    return std::nullopt;
}

std::string demo_run_id(bool quick) {
    const auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    return fmt::format("demo-{:%Y%m%d-%H%M%S}{}", now, quick ? "-quick" : "");
}

std::vector<std::vector<text::ChatMessage>> held_out_prompts(const std::string& test_jsonl, std::size_t count,
                                                             std::vector<std::vector<std::string>>* emotions) {
    std::vector<std::vector<text::ChatMessage>> prompts;
    train::ChatDatasetStats stats;
    train::for_each_chat_example(test_jsonl, stats, [&](train::ChatExample&& example) {
        if (prompts.size() >= count || example.source != "empathetic_dialogues") return;
        std::vector<text::ChatMessage> prompt;
        for (auto& message : example.messages) {
            prompt.push_back(std::move(message));
            if (prompt.back().role == "user") break;
        }
        if (prompt.back().role != "user") return;
        prompts.push_back(std::move(prompt));
        if (emotions == nullptr) return;
        std::vector<std::string> labels;
        for (const std::int32_t id : example.emotions) labels.emplace_back(data::emotion_labels()[static_cast<std::size_t>(id)].name);
        emotions->push_back(std::move(labels));
    });
    return prompts;
}

std::vector<eval::MetricRow> metric_rows(const train::DevMetrics& base, const train::DevMetrics& sft,
                                         const train::DevMetrics* dpo) {
    using eval::Better;
    const std::size_t emotions = data::emotion_labels().size();
    const std::size_t strategies = data::strategies().size();
    const auto of_dpo = [&](double train::DevMetrics::*metric) { return dpo != nullptr ? dpo->*metric : NAN; };
    std::vector<eval::MetricRow> rows;
    rows.push_back({"dev NLL (nats per reply token)", base.nll, sft.nll, Better::Lower, fmt::format("{} reply tokens", sft.nll_tokens),
                    of_dpo(&train::DevMetrics::nll)});
    rows.push_back({"dev perplexity", std::exp(base.nll), std::exp(sft.nll), Better::Lower, "exp(NLL)",
                    std::exp(of_dpo(&train::DevMetrics::nll))});
    rows.push_back({"safety KL to the rules-prompted teacher", base.safe_kl, sft.safe_kl, Better::Lower,
                    "nats per reply token, τ-softened; the teacher is the base with the safety rules as system prompt",
                    of_dpo(&train::DevMetrics::safe_kl)});
    rows.push_back({"emotion macro-F1 (ED, ESConv)", NAN, sft.emotion_macro_f1, Better::Higher, chance_note(sft.emotion_sites, emotions),
                    of_dpo(&train::DevMetrics::emotion_macro_f1)});
    rows.push_back({"emotion accuracy (ED, ESConv)", NAN, sft.emotion_accuracy, Better::Higher, chance_note(sft.emotion_sites, emotions),
                    of_dpo(&train::DevMetrics::emotion_accuracy)});
    rows.push_back({"emotion multi-label F1 (GoEmotions)", NAN, sft.emotion_multilabel_f1, Better::Higher,
                    fmt::format("{} dev sites; base has no head", sft.emotion_multilabel_sites),
                    of_dpo(&train::DevMetrics::emotion_multilabel_f1)});
    rows.push_back({"strategy accuracy (ESConv)", NAN, sft.strategy_accuracy, Better::Higher, chance_note(sft.strategy_sites, strategies),
                    of_dpo(&train::DevMetrics::strategy_accuracy)});
    rows.push_back({"strategy macro-F1 (ESConv)", NAN, sft.strategy_macro_f1, Better::Higher, chance_note(sft.strategy_sites, strategies),
                    of_dpo(&train::DevMetrics::strategy_macro_f1)});
    rows.push_back({"valence/arousal MSE", NAN, sft.va_mse, Better::Lower, fmt::format("{} dev sites; base has no head", sft.va_sites),
                    of_dpo(&train::DevMetrics::va_mse)});
    rows.push_back({"valence/arousal MAE", NAN, sft.va_mae, Better::Lower, fmt::format("{} dev sites; base has no head", sft.va_sites),
                    of_dpo(&train::DevMetrics::va_mae)});
    return rows;
}

std::vector<eval::MetricRow> preference_rows(const train::DpoDevMetrics& base, const train::DpoDevMetrics& sft,
                                             const train::DpoDevMetrics& dpo) {
    using eval::Better;
    const auto pairs = fmt::format("{} dev pairs", dpo.batch.pairs);
    const std::string reference = pairs + "; against the SFT model as reference, so not defined for SFT itself";
    std::vector<eval::MetricRow> rows;
    rows.push_back({"dev preference accuracy (log π(y+) > log π(y−))", base.preference_accuracy, sft.preference_accuracy,
                    Better::Higher, pairs + "; summed log-probs of the preferred and the rejected reply",
                    dpo.preference_accuracy});
    rows.push_back({"DPO reward accuracy on dev pairs", base.batch.rewards_accuracies, NAN, Better::Higher, reference,
                    dpo.batch.rewards_accuracies});
    rows.push_back({"DPO reward margin on dev pairs", base.batch.rewards_margins, NAN, Better::Higher, reference,
                    dpo.batch.rewards_margins});
    rows.push_back({"DPO loss on dev pairs", base.batch.loss, sft.batch.loss, Better::Lower,
                    pairs + "; log 2 = 0.693 at the reference", dpo.batch.loss});
    return rows;
}

}  // namespace kindred::cli
