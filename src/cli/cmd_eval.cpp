// kindred eval eqbench2: EQ-Bench v2 (judge-free) with the official prompt, parsing and scoring.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "eval/eqbench2.h"

namespace kindred::cli {
namespace {

// 171 answers of a few hundred bytes each; far more than that is not an answers file.
constexpr std::uintmax_t kMaxAnswersBytes = 64u << 20;

struct EqBench2Options {
    std::string questions;
    std::string answers;
    bool json = false;
};

std::map<std::string, std::string> read_answers(const std::string& path) {
    const nlohmann::json root = read_json_file(path, kMaxAnswersBytes);
    if (!root.is_object()) fail("{}: expected a JSON object of question id -> answer text", path);
    std::map<std::string, std::string> answers;
    for (const auto& [id, text] : root.items()) {
        if (!text.is_string()) fail("{}: answer for question '{}' is not a string", path, id);
        answers[id] = text.get<std::string>();
    }
    return answers;
}

void report(const eval::EqBench2Result& result, bool json) {
    if (json) {
        nlohmann::json out = {{"score", result.score},
                              {"parseable_fraction", result.parseable_fraction},
                              {"parseable", result.parseable},
                              {"n", result.n}};
        nlohmann::json per_question = nlohmann::json::object();
        for (const auto& question : result.questions) {
            per_question[question.id] = question.score ? nlohmann::json(*question.score) : nlohmann::json(nullptr);
        }
        out["questions"] = std::move(per_question);
        fmt::print("{}\n", out.dump(2));
    } else {
        fmt::print("EQ-Bench v2 score {:.2f}  ({} of {} answers parseable, {:.1f}%)\n", result.score, result.parseable,
                   result.n, 100.0 * result.parseable_fraction);
    }
    if (result.parseable_fraction < eval::kEqBench2MinParseableFraction) {
        fail("only {} of {} answers parsed ({:.1f}%); EQ-Bench v2 needs at least 83.33%", result.parseable, result.n,
             100.0 * result.parseable_fraction);
    }
}

void run_eqbench2(const EqBench2Options& options) {
    const auto questions = eval::load_eqbench2_questions(options.questions);
    report(eval::score_eqbench2_answers(questions, read_answers(options.answers)), options.json);
}

}  // namespace

void add_eval_command(CLI::App& app) {
    CLI::App* eval = app.add_subcommand("eval", "Benchmarks");
    eval->require_subcommand(1);
    auto options = std::make_shared<EqBench2Options>();
    CLI::App* eqbench2 = eval->add_subcommand("eqbench2", "EQ-Bench v2 (judge-free emotional understanding, 171 questions)");
    eqbench2->add_option("--questions", options->questions, "eq_bench_v2_questions_171.json")->required()->check(CLI::ExistingFile);
    eqbench2->add_option("--answers", options->answers,
                         "JSON object question id -> raw answer text; scores these answers without running a model")
        ->required()
        ->check(CLI::ExistingFile);
    eqbench2->add_flag("--json", options->json, "Print score, parseable_fraction, n and per-question scores as JSON");
    eqbench2->callback([options] { run_eqbench2(*options); });
}

}  // namespace kindred::cli
