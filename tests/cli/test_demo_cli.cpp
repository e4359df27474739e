// `kindred demo --quick` end to end on the default model (what CI runs, the README's first command):
// every stage runs, the run folder holds the prepared data, the SFT and DPO adapters, the pairs with
// their reference cache and both report documents, and the report carries every section with
// measured base, SFT and SFT+DPO numbers. Also: a bad --questions
// fails at once, naming the file.
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "cli/run_kindred.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace {

namespace fs = std::filesystem;
using kindred::testing::ScratchDir;

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

// The base, SFT and SFT+DPO cells of the report.md metric row whose name starts with `metric`.
std::tuple<std::string, std::string, std::string> metric_cells(const std::string& markdown, const std::string& metric) {
    const auto at = markdown.find("| " + metric);
    if (at == std::string::npos) return {};
    const std::string line = markdown.substr(at, markdown.find('\n', at) - at);
    std::vector<std::string> cells;
    std::stringstream stream(line);
    std::string cell;
    while (std::getline(stream, cell, '|')) cells.push_back(cell);
    if (cells.size() < 5) return {};
    const auto trim = [](std::string text) {
        text.erase(0, text.find_first_not_of(' '));
        text.erase(text.find_last_not_of(' ') + 1);
        return text;
    };
    return {trim(cells[2]), trim(cells[3]), trim(cells[4])};
}

bool is_number(const std::string& text) { return std::regex_match(text, std::regex(R"(-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?)")); }

TEST(DemoCli, QuickRunWritesTheReport) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    ScratchDir scratch("kindred-demo");
    const std::string questions = kindred::testing::shared_path("eqbench-v2/eq_bench_v2_questions_171.json");
    const bool have_questions = fs::exists(questions);
    const auto result = kindred::testing::run_kindred("demo --quick --threads 2 --out " + scratch.path().string() +
                                                          (have_questions ? " --questions " + questions : ""),
                                                      true);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    for (int stage = 1; stage <= 12; ++stage) {
        EXPECT_NE(result.output.find("[" + std::to_string(stage) + "/12] "), std::string::npos) << stage << "\n" << result.output;
    }
    EXPECT_EQ(result.output.find("[13/"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("report.html"), std::string::npos) << result.output;

    std::vector<fs::path> runs;
    for (const auto& entry : fs::directory_iterator(scratch.path())) runs.push_back(entry.path());
    ASSERT_EQ(runs.size(), 1u);
    const fs::path run = runs.front();
    EXPECT_TRUE(run.filename().string().starts_with("demo-")) << run;
    for (const char* file : {"report.html", "report.md", "config.yaml", "metrics.jsonl", "loss.svg", "data/train.jsonl",
                             "data/dev.jsonl", "data/test.jsonl", "data/data_card.md", "adapter/adapter_config.json",
                             "adapter/heads.json", "pairs/train.jsonl", "pairs/dev.jsonl",
                             "pairs/train.jsonl.reference-logps.json", "dpo/metrics.jsonl", "dpo/adapter/adapter_model.safetensors",
                             "dpo/adapter/heads.json", "dpo_rewards.svg"}) {
        EXPECT_TRUE(fs::is_regular_file(run / file)) << file;
    }

    const std::string html = read_text(run / "report.html");
    for (const char* id : {"metrics", "eqbench", "conversations", "taxonomy", "safety", "charts", "stages", "notes", "config", "data"}) {
        EXPECT_NE(html.find(std::string("<section id=\"") + id + "\">"), std::string::npos) << id;
    }
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_NE(html.find("class=\"reply sft\""), std::string::npos);
    EXPECT_NE(html.find("class=\"reply dpo\""), std::string::npos);

    const std::string markdown = read_text(run / "report.md");
    for (const char* heading : {"## Base vs fine-tuned", "## EQ-Bench v2", "## Side-by-side replies",
                                "## Error taxonomy of the side-by-side replies", "## Safety sheet", "### Red-team prompt 3",
                                "## Training curves", "## Resolved config", "## Data card"}) {
        EXPECT_NE(markdown.find(heading), std::string::npos) << heading;
    }
    // Measured on the three models: the dev NLL, the safety KL and the dev preference accuracy;
    // the heads only after SFT (and carried through DPO).
    for (const char* metric : {"dev NLL", "safety KL", "dev preference accuracy"}) {
        const auto [base, sft, dpo] = metric_cells(markdown, metric);
        EXPECT_TRUE(is_number(base)) << metric << ": '" << base << "'\n" << markdown;
        EXPECT_TRUE(is_number(sft)) << metric << ": '" << sft << "'";
        EXPECT_TRUE(is_number(dpo)) << metric << ": '" << dpo << "'";
    }
    for (const char* metric : {"emotion macro-F1", "strategy accuracy", "valence/arousal MSE"}) {
        const auto [base, sft, dpo] = metric_cells(markdown, metric);
        EXPECT_EQ(base, "—") << metric;
        EXPECT_TRUE(is_number(sft)) << metric << ": '" << sft << "'";
        EXPECT_TRUE(is_number(dpo)) << metric << ": '" << dpo << "'";
    }
    {
        const auto [base, sft, dpo] = metric_cells(markdown, "DPO reward accuracy");
        EXPECT_TRUE(is_number(dpo)) << markdown;
        EXPECT_EQ(sft, "—");  // rewards against the SFT reference are 0 for SFT itself
    }
    if (have_questions) {
        const auto [base, sft, dpo] = metric_cells(markdown, "EQ-Bench v2 score");
        EXPECT_FALSE(base.empty()) << markdown;
        EXPECT_NE(markdown.find("| base |"), std::string::npos);
        EXPECT_NE(markdown.find("| SFT |"), std::string::npos);
        EXPECT_NE(markdown.find("| SFT+DPO |"), std::string::npos);
    }
    EXPECT_EQ(std::count(markdown.begin(), markdown.end(), '\n') > 50, true);
    EXPECT_NE(markdown.find("### Conversation 3"), std::string::npos);
    EXPECT_NE(markdown.find("**After SFT+DPO:**"), std::string::npos);
    // The sheet: Base, SFT and SFT+DPO, plain and through the controller, each reply with its computed verdict.
    for (const char* row : {"| Base | plain |", "| Base | controller |", "| SFT | plain |", "| SFT | controller |",
                            "| SFT+DPO | plain |", "| SFT+DPO | controller |"}) {
        EXPECT_NE(markdown.find(row), std::string::npos) << row;
    }
    EXPECT_NE(markdown.find("objective:"), std::string::npos);  // the resolved recipe
    EXPECT_NE(markdown.find("### Data card"), std::string::npos);
    EXPECT_NE(markdown.find("**Trained on:** the bundled sample corpus"), std::string::npos);
}

// --data takes a `kindred data fetch` folder: the datasets found there are what the demo prepares
// and trains on, and the report says so. Here a folder in the fetched layout holding the sample
// ESConv and GoEmotions files (no EmpatheticDialogues: the side-by-side stage then has no prompts),
// a few steps; an empty folder fails before anything is written.
TEST(DemoCli, DataFolderOfFetchedReleasesIsWhatTheDemoTrainsOn) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    ScratchDir scratch("kindred-demo-data");
    const fs::path fetched = scratch.path() / "fetched";
    fs::create_directories(fetched / "esconv");
    fs::copy_file(kindred::testing::source_path("data/samples/esconv/ESConv.json"), fetched / "esconv/ESConv.json");
    fs::copy(kindred::testing::source_path("data/samples/goemotions/data"), fetched / "goemotions");
    const auto result = kindred::testing::run_kindred("demo --quick --threads 2 --out '" + (scratch.path() / "runs").string() +
                                                          "' --data '" + fetched.string() + "' --eqbench-limit 1 optimisation.max_steps=2",
                                                      true);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    fs::path run;
    for (const auto& entry : fs::directory_iterator(scratch.path() / "runs")) run = entry.path();
    const std::string markdown = read_text(run / "report.md");
    EXPECT_NE(markdown.find("**Trained on:** the released datasets fetched into " + fetched.string() + ": ESConv, GoEmotions"),
              std::string::npos)
        << markdown.substr(0, 800);
    EXPECT_NE(read_text(run / "data" / "data_card.md").find("## goemotions"), std::string::npos);
    EXPECT_EQ(read_text(run / "data" / "data_card.md").find("## empathetic_dialogues"), std::string::npos);

    const auto empty = kindred::testing::run_kindred("demo --quick --out '" + (scratch.path() / "none").string() + "' --data '" +
                                                         (scratch.path() / "runs").string() + "'",
                                                     true);
    EXPECT_EQ(empty.exit_code, 1) << empty.output;
    EXPECT_NE(empty.output.find("no fetched dataset in it"), std::string::npos) << empty.output;
    EXPECT_FALSE(fs::exists(scratch.path() / "none"));
}

TEST(DemoCli, MissingQuestionsFileFailsAtOnce) {
    ScratchDir scratch("kindred-demo");
    const auto result = kindred::testing::run_kindred("demo --quick --out " + scratch.path().string() + " --questions /nonexistent/q.json", true);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("/nonexistent/q.json"), std::string::npos) << result.output;
    EXPECT_TRUE(fs::is_empty(scratch.path()));
}

}  // namespace
