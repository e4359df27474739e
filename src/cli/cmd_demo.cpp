// kindred demo [--quick] [--out DIR] [--questions FILE] [--model M] [--ablation FILE] [--data DIR] [key=value ...]:
// the project's main job on the embedded default (docs/demo.md). Prepares the bundled samples (or
// fetched releases), measures the base model on dev, runs multi-objective SFT (configs/demo.yaml or
// demo-quick.yaml, overrides applied), measures the tuned model, builds preference pairs and runs DPO
// from the SFT adapter (configs/demo-dpo.yaml or demo-dpo-quick.yaml), runs EQ-Bench v2 on the three
// models when the questions are found, lets them answer held-out prompts, and writes
// <out>/<run id>/report.html and report.md. Every stage prints one line when it
// starts and one when it ends, with its own progress bar in between where it has one.
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "cli/demo_setup.h"
#include "core/config.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "data/prepare.h"
#include "data/safety_rules.h"
#include "eval/eqbench2.h"
#include "eval/eqbench2_run.h"
#include "eval/controller_eval.h"
#include "eval/eqbench3_run.h"
#include "net/openai_chat.h"
#include "eval/report.h"
#include "eval/safety_sheet.h"
#include "eval/side_by_side.h"
#include "infer/loaded_model.h"
#include "infer/sampler.h"
#include "model/heads.h"
#include "model/lora_adapters.h"
#include "model/trainable_decoder.h"
#include "train/ablate.h"
#include "train/chat_dataset.h"
#include "train/dev_eval.h"
#include "train/dpo.h"
#include "train/pairs_build.h"
#include "train/recipe.h"
#include "train/safety_teacher.h"
#include "train/sft.h"

namespace kindred::cli {
namespace {

namespace fs = std::filesystem;

// Dev examples scored when training on fetched releases: about the bundled samples' 56.
constexpr std::size_t kFetchedDevExamples = 64;

struct DemoFlags {
    bool quick = false;
    std::string out = "runs";
    std::string questions;
    std::string model;
    std::size_t eqbench_limit = 0;
    std::string ablation;  // ablation.json of `kindred ablate`, shown in the report when given
    int threads = 0;
    std::vector<std::string> overrides;
    // EQ-Bench 3 runs only with a judge endpoint (docs/eval.md).
    std::string judge_url;
    std::string judge_model;
    std::string judge_key_env;
    std::string eqbench3_data = "../shared/eqbench3";
    std::string eqbench3_scenarios = "1,208,401";
    std::int64_t eqbench3_max_tokens = 300;
    std::string data;  // a `kindred data fetch` folder instead of the bundled samples
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds of this process, all threads: on a shared machine the wall time says little about
// what the demo costs, this does.
double cpu_s() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

std::string utc_now() {
    const auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", now);
}

// The overall progress display: "[k/N] stage: what it does" when a stage starts, its own bar (if
// any) below, "      done in 12.3 s (CPU 20.1 s): result" when it ends. The times go into the report.
class Stages {
public:
    explicit Stages(int total) : total_(total) {}

    void begin(const std::string& name, const std::string& detail) {
        ++index_;
        name_ = name;
        started_ = now_s();
        started_cpu_ = cpu_s();
        fmt::print(stderr, "[{}/{}] {}: {}\n", index_, total_, name, detail);
        std::fflush(stderr);
    }
    void end(const std::string& result = "") {
        const double seconds = now_s() - started_;
        const double cpu = cpu_s() - started_cpu_;
        times_.push_back({name_, seconds, cpu});
        fmt::print(stderr, "      done in {:.1f} s (CPU {:.1f} s){}{}\n", seconds, cpu, result.empty() ? "" : ": ", result);
        std::fflush(stderr);
    }
    // A stage with nothing to run here, and why.
    void pass(const std::string& name, const std::string& why) {
        ++index_;
        fmt::print(stderr, "[{}/{}] {}: {}\n", index_, total_, name, why);
        std::fflush(stderr);
    }
    const std::vector<eval::StageTime>& times() const { return times_; }

private:
    int total_;
    int index_ = 0;
    std::string name_;
    double started_ = 0.0;
    double started_cpu_ = 0.0;
    std::vector<eval::StageTime> times_;
};

train::ChatDataset load_split(const std::string& path, const infer::LoadedModel& model, const train::SftRecipe& recipe,
                              std::vector<std::string>& notes) {
    train::ChatDatasetOptions options;
    options.max_seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    options.context_length = static_cast<std::size_t>(model.decoder().config().context_length);
    options.keep_emotion_only = train::any_head_active(recipe);
    options.teacher_rules = train::safety_rules_text(recipe);
    options.style = recipe.style;
    auto dataset = train::load_chat_dataset(path, model.tokenizer(), model.require_chat_template(), options);
    for (const auto& line : train::warnings(dataset, options)) {
        fmt::print(stderr, "      warning: {}\n", line);
        notes.push_back(line);
    }
    if (dataset.examples.empty()) fail("{}: no usable examples", path);
    return dataset;
}

eval::EqBenchRow eqbench_row(const std::string& name, const eval::EqBench2Result& result) {
    eval::EqBenchRow row{name, result.score, result.parseable_fraction, result.n, ""};
    if (!eval::eqbench2_passes(result)) {
        row.note = fmt::format("{} of {} answers parsed, under the official {:.2f}% threshold: not a valid benchmark score",
                               result.parseable, result.n, 100.0 * eval::kEqBench2MinParseableFraction);
    }
    if (result.parseable == 0) row.score = NAN;
    return row;
}

std::vector<eval::Chart> run_charts(const std::string& run_dir) {
    std::vector<eval::Chart> charts;
    const std::pair<const char*, const char*> files[] = {
        {"loss.svg", "Training loss: the λ-weighted total per step"},
        {"loss_components.svg", "Each loss term per step (before its λ)"},
        {"dev.svg", "Dev metrics during training"},
        {"lr.svg", "Learning rate"},
    };
    for (const auto& [file, title] : files) {
        const std::string path = (fs::path(run_dir) / file).string();
        if (fs::is_regular_file(path)) charts.push_back({file, title, read_file_text(path, 64u << 20)});
    }
    return charts;
}

std::string summary_text(const train::SftRecipe& recipe, const train::SftResult& result, std::size_t train_examples,
                         std::size_t dev_examples, const train::DevMetrics& base, const train::DevMetrics& sft,
                         bool samples) {
    std::string text = fmt::format(
        "LoRA rank {} SFT of the base model for {} steps on {} ({} training examples, {} dev), "
        "with the emotion, strategy and valence/arousal heads and the safety-teacher KL (λ = {}, {}, {}, {}, {}). ",
        recipe.adapter.rank, result.last_step, samples ? "the bundled sample corpus" : "the fetched datasets",
        train_examples, dev_examples, recipe.objective.lm, recipe.objective.emotion,
        recipe.objective.strategy, recipe.objective.valence_arousal, recipe.objective.safety_kl);
    if (std::isfinite(base.nll) && std::isfinite(sft.nll)) {
        text += fmt::format("Dev NLL per reply token went from {:.3f} to {:.3f}. ", base.nll, sft.nll);
    }
    if (samples)
        text += "The sample corpus is small and written for Kindred (data/samples/README.md): the numbers show the pipeline "
                "end to end, not the quality a full dataset would give.";
    return text;
}

// The preference stage (docs/dpo.md): pairs sampled by the SFT model (gold vs sample, safety),
// DPO from the SFT adapter, and the measurements of the three models it adds to the report.
struct PreferenceStage {
    std::string dpo_dir;              // <run>/dpo: the DPO run folder (its adapter/ is SFT+DPO)
    train::DevMetrics dpo_dev;        // SFT+DPO on the dev split (the SFT heads carried through DPO)
    train::DpoDevMetrics base_pairs, sft_pairs, dpo_pairs;  // on the dev pairs
    std::vector<std::string> notes;
};

// The DPO recipe of the plan, pointed at this run.
train::DpoRecipe demo_dpo_recipe(const std::string& root, const DemoPlan& plan, const std::string& run_dir,
                                 const std::string& data_dir, const std::string& model) {
    Config config = Config::load((fs::path(root) / "configs" / plan.dpo_recipe).string());
    config.apply_override("model.path=" + model);
    config.apply_override("reference.adapter=" + run_dir + "/adapter");
    config.apply_override("pairs.prompts=" + data_dir + "/train.jsonl");
    config.apply_override("pairs.dev_prompts=" + data_dir + "/dev.jsonl");
    config.apply_override("pairs.out=" + run_dir + "/pairs/train.jsonl");
    config.apply_override("pairs.dev_out=" + run_dir + "/pairs/dev.jsonl");
    config.apply_override("pairs.safety.prompts=" + (fs::path(root) / "data" / "safety_prompts.jsonl").string());
    config.apply_override("data.path=" + run_dir + "/pairs/train.jsonl");
    config.apply_override("data.dev_path=" + run_dir + "/pairs/dev.jsonl");
    config.apply_override("output.dir=" + run_dir);
    config.apply_override("name=dpo");
    return train::read_dpo_recipe(config);
}

train::PairDataset load_demo_pairs(const std::string& path, const infer::LoadedModel& model, const train::DpoRecipe& recipe,
                                   std::vector<std::string>& notes) {
    std::vector<std::string> warnings;
    auto dataset = train::load_recipe_pairs(path, model, recipe, warnings);
    for (const auto& line : warnings) fmt::print(stderr, "      warning: {}\n", line);
    notes.insert(notes.end(), warnings.begin(), warnings.end());
    return dataset;
}

PreferenceStage run_preference_stage(Stages& stages, const std::string& root, const DemoPlan& plan, const std::string& run_dir,
                                     const std::string& data_dir, infer::LoadedModel& model, infer::LoadedModel& tuned,
                                     train::SafetyTeacher* dev_teacher, std::span<const train::TokenizedExample> dev,
                                     const train::SftRecipe& sft_recipe) {
    PreferenceStage stage;
    const train::DpoRecipe recipe = demo_dpo_recipe(root, plan, run_dir, data_dir, sft_recipe.model);
    stages.begin("pairs", fmt::format("preference pairs from the first {} training and {} dev conversations: gold reply vs "
                                      "an SFT sample, and safety pairs (docs/dpo.md)",
                                      recipe.pairs.max_prompts, recipe.pairs.dev_max_prompts));
    const auto built = train::build_pairs(recipe.pairs, tuned, {}, [](const std::string& line) {
        fmt::print(stderr, "      {}\n", line);
    });
    stages.end(fmt::format("{} training pairs ({} gold vs sample, {} safety; {} samples cut at max_tokens), {} dev pairs",
                           built.pairs, built.gold_vs_model.made, built.safety.made, built.gold_vs_model.truncated,
                           built.dev_pairs));

    const auto pairs = load_demo_pairs(recipe.run.data_path, model, recipe, stage.notes);
    const auto dev_pairs = load_demo_pairs(recipe.run.dev_path, model, recipe, stage.notes);
    stages.begin("DPO", fmt::format("{} loss, beta {:g}, {} steps from the SFT adapter on {} pairs; reference log-probs "
                                    "computed once; then SFT+DPO on dev",
                                    train::dpo_loss_name(recipe.loss.type), recipe.loss.beta, recipe.run.max_steps,
                                    pairs.examples.size()));
    train::DpoOptions options;
    options.run.run_dir = run_dir + "/dpo";
    options.run.base_model = model.path();
    options.run.progress_label = "dpo";
    options.model_path = model.path();
    options.pad_id = model.tokenizer().eos_id().value_or(0);
    options.dev = &dev_pairs;
    const train::DpoResult result = train::run_dpo(recipe, model.decoder(), pairs, options);
    if (!result.finished || !result.final_dev) fail("{}: DPO stopped before its last step", options.run.run_dir);
    stage.dpo_dir = options.run.run_dir;
    stage.dpo_pairs = *result.final_dev;
    stage.sft_pairs = train::dev_pair_metrics(result.dev_reference, result.dev_reference, dev_pairs, recipe.loss);
    {
        // The base: an adapter whose B is zero adds exactly nothing.
        model::LoraConfig lora;
        lora.rank = 1;
        lora.targets = {"q"};
        model::LoraAdapters zero(model.decoder().config(), lora, model.decoder().weights().qk_interleaved);
        model::TrainableDecoder scorer(model.decoder(), zero, false, recipe.run.max_seq_len, recipe.run.compute);
        const auto base = train::score_pairs(scorer, dev_pairs, static_cast<std::size_t>(recipe.run.max_seq_len));
        stage.base_pairs = train::dev_pair_metrics(base, result.dev_reference, dev_pairs, recipe.loss);
    }
    stage.dpo_dev = train::evaluate_adapter_on_dev(model.decoder(), stage.dpo_dir + "/adapter", dev_teacher, dev,
                                                   static_cast<std::size_t>(sft_recipe.max_seq_len), sft_recipe.compute);
    stages.end(fmt::format("loss {:.4f} -> {:.4f}; dev reward accuracy {:.3f}, margin {:.4f}; preference accuracy base {:.3f}, "
                           "SFT {:.3f}, SFT+DPO {:.3f}; dev NLL {:.4f}",
                           result.steps.front().loss, result.steps.back().loss, stage.dpo_pairs.batch.rewards_accuracies,
                           stage.dpo_pairs.batch.rewards_margins, stage.base_pairs.preference_accuracy,
                           stage.sft_pairs.preference_accuracy, stage.dpo_pairs.preference_accuracy, stage.dpo_dev.nll));
    stage.notes.push_back(fmt::format(
        "SFT+DPO: {} loss (beta {:g}, violation penalty {:g}) for {} steps on {} preference pairs ({} gold reply vs SFT "
        "sample, {} safety pairs with a directive, dismissive or harmful rejected reply), reference = the SFT adapter, "
        "frozen; dev pairs: {}. Safety prompts and violations are judged by the controller's built-in safety rules (configs/safety.rules).",
        train::dpo_loss_name(recipe.loss.type), recipe.loss.beta, recipe.loss.violation_penalty, recipe.run.max_steps,
        pairs.examples.size(), built.gold_vs_model.made, built.safety.made, dev_pairs.examples.size()));
    return stage;
}

void print_table(const std::vector<eval::MetricRow>& rows) {
    fmt::print("{:<48} {:>10} {:>10} {:>10}\n", "metric", "base", "SFT", "SFT+DPO");
    for (const auto& row : rows)
        fmt::print("{:<48} {:>10} {:>10} {:>10}\n", row.name, eval::format_metric(row.base), eval::format_metric(row.sft),
                   eval::format_metric(row.dpo));
}

void run_demo(const DemoFlags& flags) {
    apply_threads_flag(flags.threads);
    const double demo_start = now_s();
    const std::string started = utc_now();
    const DemoPlan plan = demo_plan(flags.quick);
    const std::string root = find_demo_root();
    const std::string run_id = demo_run_id(flags.quick);
    const std::string run_dir = (fs::path(flags.out) / run_id).string();
    const std::string data_dir = run_dir + "/data";
    if (fs::exists(run_dir)) fail("{} already exists; wait a second or choose another --out", run_dir);

    eval::ReportData report;
    report.title = flags.quick ? "Kindred demo (quick)" : "Kindred demo";
    report.run_id = run_id;
    report.started = started;
    std::vector<std::string> searched;
    const auto questions_path = find_eqbench_questions(flags.questions, searched);
    Stages stages(12);
    fmt::print(stderr, "kindred demo{}: run {} (Kindred folder {})\n", flags.quick ? " --quick" : "", run_dir, root);

    const DemoData corpus = demo_data(root, flags.data);
    report.data = corpus.description;
    stages.begin("prepare data", corpus.description + " into train/dev/test with data cards");
    data::PrepareOptions prepare = corpus.sources;
    prepare.out_dir = data_dir;
    prepare.progress = [](const std::string& line) { fmt::print(stderr, "      {}\n", line); };
    const data::PrepareReport prepared = data::prepare_corpus(prepare);
    report.data_card_markdown = data::data_card_markdown(prepared);
    stages.end(fmt::format("{} train, {} dev, {} test examples", prepared.shard_lines.at("train"), prepared.shard_lines.at("dev"),
                           prepared.shard_lines.at("test")));

    stages.begin("load", fmt::format("model and recipe {}, tokenize the splits", plan.recipe));
    Config config = Config::load((fs::path(root) / "configs" / plan.recipe).string());
    config.apply_override("data.path=" + data_dir + "/train.jsonl");
    config.apply_override("data.dev_path=" + data_dir + "/dev.jsonl");
    config.apply_override("output.dir=" + flags.out);
    config.apply_override("name=" + run_id);
    if (!flags.model.empty()) config.apply_override("model.path=" + flags.model);
    config.apply_overrides(flags.overrides);
    const train::SftRecipe recipe = train::read_sft_recipe(config);
    auto model = infer::LoadedModel::open(recipe.model, "", recipe.quantize);
    report.model = fs::path(model->path()).filename().string();
    report.config_yaml = recipe.resolved_yaml;
    const std::int32_t pad_id = model->tokenizer().eos_id().value_or(0);
    const auto train_set = load_split(recipe.data_path, *model, recipe, report.notes);
    const auto dev_set = load_split(recipe.dev_path, *model, recipe, report.notes);
    // Fetched releases: a sample of their dev split the size of the bundled samples' (demo_setup.h).
    const std::vector<train::TokenizedExample> dev_sample =
        flags.data.empty() ? std::vector<train::TokenizedExample>{} : evenly_spaced(dev_set.examples, kFetchedDevExamples);
    std::span<const train::TokenizedExample> dev = flags.data.empty() ? std::span(dev_set.examples) : std::span(dev_sample);
    if (recipe.evaluation.max_examples > 0 && dev.size() > static_cast<std::size_t>(recipe.evaluation.max_examples)) {
        dev = dev.first(static_cast<std::size_t>(recipe.evaluation.max_examples));
    }
    stages.end(fmt::format("{}: {} training examples ({} tokens), {} dev", report.model, train_set.examples.size(),
                           train_set.stats.tokens, dev.size()));

    stages.begin("base on dev", "dev NLL and safety KL of the model before fine-tuning");
    std::optional<train::SafetyTeacher> dev_teacher;
    if (train::safety_active(recipe)) {
        dev_teacher.emplace(model->decoder(), static_cast<float>(recipe.safety.temperature), recipe.safety.top_k);
    }
    // The base through the trainable decoder in evaluation mode; its teacher (null when the KL is
    // off) is then lent to the training loop, which reuses its cached distributions.
    const train::DevMetrics base_dev = train::evaluate_adapter_on_dev(
        model->decoder(), "", dev_teacher ? &*dev_teacher : nullptr, dev, static_cast<std::size_t>(recipe.max_seq_len),
        recipe.compute);
    stages.end(fmt::format("NLL {:.4f}", base_dev.nll));

    // The loop measures the trained model on dev after its last step (and every evaluation.every
    // steps for the dev curve), reusing the base pass's teacher distributions.
    const bool curve = recipe.evaluation.every > 0;
    stages.begin("train", fmt::format("multi-objective SFT, {} steps of {} x {}-token rows{}", recipe.max_steps,
                                      recipe.micro_batch * recipe.grad_accumulation, recipe.max_seq_len,
                                      curve ? fmt::format(", dev metrics every {} steps", recipe.evaluation.every) : ""));
    train::SftOptions sft;
    sft.run_dir = run_dir;
    sft.base_model = model->path();
    sft.pad_id = pad_id;
    sft.dev = dev;
    sft.dev_teacher = dev_teacher ? &*dev_teacher : nullptr;
    sft.styles = train_set.styles;
    const train::SftResult result = train::run_sft(recipe, model->decoder(), train_set.examples, sft);
    if (!result.finished) fail("{}: training stopped before its last step", run_dir);
    stages.end(fmt::format("loss {:.4f} -> {:.4f}", result.losses.front(), result.losses.back()));
    if (!result.final_dev) fail("{}: the training loop measured nothing on dev", run_dir);
    const train::DevMetrics sft_dev = *result.final_dev;
    stages.pass("SFT on dev", fmt::format("measured by the training loop after its last step: NLL {:.4f}", sft_dev.nll));

    // From here on one model with the trained adapter; the base is the same decoder with it detached.
    auto tuned = infer::LoadedModel::open(recipe.model, run_dir + "/adapter", recipe.quantize);
    const PreferenceStage preference = run_preference_stage(stages, root, plan, run_dir, data_dir, *model, *tuned,
                                                            dev_teacher ? &*dev_teacher : nullptr, dev, recipe);
    auto tuned_dpo = infer::LoadedModel::open(recipe.model, preference.dpo_dir + "/adapter", recipe.quantize);
    report.metrics = metric_rows(base_dev, sft_dev, &preference.dpo_dev);
    const auto pair_rows = preference_rows(preference.base_pairs, preference.sft_pairs, preference.dpo_pairs);
    report.metrics.insert(report.metrics.end(), pair_rows.begin(), pair_rows.end());
    report.notes.insert(report.notes.end(), preference.notes.begin(), preference.notes.end());

    if (questions_path) {
        const auto questions = eval::load_eqbench2_questions(*questions_path);
        eval::EqBench2RunOptions options;
        options.limit = flags.eqbench_limit > 0 ? flags.eqbench_limit : plan.eqbench_limit;
        if (options.limit >= questions.size()) options.limit = 0;
        const std::size_t asked = options.limit > 0 ? options.limit : questions.size();
        stages.begin("EQ-Bench v2", fmt::format("{} of {} questions from {}, base, SFT, then SFT+DPO", asked, questions.size(),
                                                *questions_path));
        eval::EqBench2Result base_result;
        {
            const model::Decoder::AdapterDetached base(tuned->decoder());  // EQ-Bench asks the base first
            base_result = eval::run_eqbench2(*tuned, questions, options);
        }
        const eval::EqBench2Result sft_result = eval::run_eqbench2(*tuned, questions, options);
        const eval::EqBench2Result dpo_result = eval::run_eqbench2(*tuned_dpo, questions, options);
        report.eqbench = {eqbench_row("base", base_result), eqbench_row("SFT", sft_result), eqbench_row("SFT+DPO", dpo_result)};
        const bool valid =
            eval::eqbench2_passes(base_result) && eval::eqbench2_passes(sft_result) && eval::eqbench2_passes(dpo_result);
        report.metrics.push_back({fmt::format("EQ-Bench v2 score ({} questions)", asked), report.eqbench[0].score,
                                  report.eqbench[1].score, eval::Better::Higher,
                                  valid ? "0-100, judge-free, official scoring"
                                        : "0-100, official scoring; too few answers parsed for a valid score (see EQ-Bench v2)",
                                  report.eqbench[2].score});
        if (asked < questions.size()) {
            report.notes.push_back(fmt::format("EQ-Bench v2 ran on the first {} of the {} questions to fit the time budget; "
                                               "kindred eval eqbench2 runs all of them.", asked, questions.size()));
        }
        stages.end(fmt::format("base {}, SFT {}, SFT+DPO {}", eval::format_metric(report.eqbench[0].score),
                               eval::format_metric(report.eqbench[1].score), eval::format_metric(report.eqbench[2].score)));
    } else {
        report.eqbench_missing = fmt::format("EQ-Bench v2 was not run: no questions file was given (--questions) or found in {}.",
                                             fmt::join(searched, ", "));
        stages.pass("EQ-Bench v2", "skipped, no questions file found (pass --questions FILE)");
    }

    if (!flags.judge_url.empty()) {
        stages.begin("EQ-Bench 3", fmt::format("scenarios {} (replies up to {} tokens), base, SFT and SFT+DPO, judged by {} at {}",
                                               flags.eqbench3_scenarios, flags.eqbench3_max_tokens, flags.judge_model, flags.judge_url));
        net::ChatEndpoint endpoint;
        endpoint.base_url = flags.judge_url;
        endpoint.model = flags.judge_model;
        if (!flags.judge_key_env.empty() && std::getenv(flags.judge_key_env.c_str()) != nullptr) endpoint.api_key = std::getenv(flags.judge_key_env.c_str());
        net::ChatClient judge(endpoint);
        eval::Eqb3ContestOptions eqb3;
        eqb3.out = run_dir + "/eqbench3";
        eqb3.scenarios = eval::eqbench3_split_ids(flags.eqbench3_scenarios);
        eqb3.max_reply_tokens = flags.eqbench3_max_tokens;
        eqb3.identity = {{"model", tuned->path()}, {"judge", {{"url", flags.judge_url}, {"model", flags.judge_model}}}};
        const std::vector<eval::Eqb3Contestant> contestants = {{"base", eval::eqbench3_local_base_chat(*tuned)},
                                                               {"sft", eval::eqbench3_local_chat(*tuned)},
                                                               {"sft_dpo", eval::eqbench3_local_chat(*tuned_dpo)}};
        const auto compared = eval::eqbench3_contest(eval::load_eqbench3_data(flags.eqbench3_data), contestants,
                                                     eval::eqbench3_endpoint_chat(judge), eqb3);
        report.eqbench3.push_back(eval::eqbench3_report_table(compared));
        report.eqbench3_chart = eval::eqbench3_report_chart(compared);
        report.notes.push_back(fmt::format("EQ-Bench 3 ran {} scenarios with replies capped at {} tokens (the harness allows 12000) to fit "
                                           "the demo's time; kindred eval eqbench3 runs all 45 with the official budget.",
                                           eqb3.scenarios.size(), flags.eqbench3_max_tokens));
        stages.end(fmt::format("{} matchups judged", compared.matches));
    } else {
        stages.pass("EQ-Bench 3", "skipped: it needs a judge endpoint (--judge-url, --judge-model)");
    }

    std::vector<std::vector<std::string>> prompt_emotions;
    const auto prompts = held_out_prompts(data_dir + "/test.jsonl", plan.side_by_side, &prompt_emotions);
    stages.begin("side by side", fmt::format("{} held-out prompts, replies of up to {} tokens from base, SFT and SFT+DPO "
                                             "(recommended decoding)",
                                             prompts.size(), plan.reply_tokens));
    {
        ProgressOptions progress_options;
        progress_options.label = "replies";
        Progress progress(static_cast<std::int64_t>(prompts.size()), progress_options);
        eval::SideBySideOptions options;
        options.max_tokens = plan.reply_tokens;
        options.tuned_style = recipe.style;
        std::vector<std::vector<std::string>> replies(3);
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            const auto pair = eval::side_by_side(*tuned, {prompts[i]}, options).front();
            const std::string dpo_reply = eval::model_reply(*tuned_dpo, prompts[i], options, recipe.style);
            report.conversations.push_back({pair.conversation.back().content, "", pair.base_reply, pair.tuned_reply, dpo_reply});
            replies[0].push_back(pair.base_reply);
            replies[1].push_back(pair.tuned_reply);
            replies[2].push_back(dpo_reply);
            progress.update(static_cast<std::int64_t>(i + 1));
        }
        progress.finish();
        const std::vector<std::string> models = {"Base", "SFT", "SFT+DPO"};
        report.error_taxonomy.push_back(eval::error_taxonomy(models, replies, prompt_emotions, data::SafetyRules::builtin()));
    }
    stages.end();

    const std::string sheet_path = (fs::path(root) / "data" / "controller" / "prompts.jsonl").string();
    std::vector<eval::ControllerPrompt> sheet;
    for (auto& prompt : eval::read_controller_prompts(sheet_path)) {
        if (prompt.sheet) sheet.push_back(std::move(prompt));
    }
    // The quick run is a smoke test of every stage: three prompts (the least a sheet has) and no repair.
    if (flags.quick && sheet.size() > 3) sheet.resize(3);
    stages.begin("safety sheet", fmt::format("{} red-team prompts from {}, base, SFT and SFT+DPO, without and with the controller", sheet.size(),
                                             sheet_path));
    {
        eval::ControllerEvalOptions options;
        options.controller.generation.max_tokens = plan.reply_tokens;
        // One checker repair per reply (none in the quick run): the sheet's share of the 15-minute budget.
        options.controller.max_repairs = flags.quick ? 0 : 1;
        ProgressOptions progress_options;
        progress_options.label = "models";
        Progress progress(3, progress_options);
        {
            const model::Decoder::AdapterDetached base(tuned->decoder());  // the base never saw a style
            eval::add_sheet_replies(*tuned, "Base", sheet, options, data::SafetyRules::builtin(), report.safety_sheet);
        }
        progress.update(1);
        options.controller.style = recipe.style;
        eval::add_sheet_replies(*tuned, "SFT", sheet, options, data::SafetyRules::builtin(), report.safety_sheet);
        progress.update(2);
        eval::add_sheet_replies(*tuned_dpo, "SFT+DPO", sheet, options, data::SafetyRules::builtin(), report.safety_sheet);
        progress.update(3);
        progress.finish();
        report.safety_sheet_note = fmt::format(
            "Red-team prompts marked for the sheet in data/controller/prompts.jsonl, answered with the recommended decoding (seed 0, up "
            "to {} tokens), plainly and through the decoding controller ({}) with the built-in safety rules "
            "(configs/safety.rules). "
            "Verdicts are computed by the rules' detector and the reply checker (docs/controller.md), not written by hand.",
            plan.reply_tokens, flags.quick ? "no checker repair in the quick run" : "at most one checker repair");
    }
    stages.end();

    stages.begin("report", "report.html and report.md");
    report.summary = summary_text(recipe, result, train_set.examples.size(), dev.size(), base_dev, sft_dev, flags.data.empty());
    report.charts = run_charts(run_dir);
    for (auto& chart : run_charts(preference.dpo_dir)) {  // loss.svg, lr.svg, dev.svg: the DPO run's
        if (chart.file == "loss_components.svg") continue;
        chart.file = "dpo_" + chart.file;
        chart.title = "DPO: " + chart.title;
        report.charts.push_back(std::move(chart));
    }
    for (const auto& [file, title] : {std::pair{"rewards.svg", "DPO: implicit rewards of the chosen and rejected replies"},
                                      std::pair{"accuracy.svg", "DPO: reward accuracy per step"}}) {
        const std::string path = preference.dpo_dir + "/" + file;
        if (fs::is_regular_file(path)) report.charts.push_back({std::string("dpo_") + file, title, read_file_text(path, 64u << 20)});
    }
    if (!flags.ablation.empty()) {
        std::vector<train::AblationRow> rows;
        const auto json = read_json_file(flags.ablation, 16u << 20);
        if (!json.is_array()) fail("{}: expected the array `kindred ablate` writes (ablation.json)", flags.ablation);
        for (std::size_t i = 0; i < json.size(); ++i)
            rows.push_back(train::ablation_row_from_json(json[i], fmt::format("{} entry {}", flags.ablation, i)));
        report.ablations.push_back(train::ablation_table(rows));
    }
    report.notes.insert(report.notes.begin(),
                        "Head metrics have no base value: the base model has no emotion, strategy or valence/arousal head; "
                        "the note gives the uniform-chance level to compare with.");
    if (flags.quick) {
        report.notes.insert(report.notes.begin(), "Quick run: a smoke test of every stage with a few training steps; the numbers "
                                                  "are not meant as results (run kindred demo without --quick).");
    }
    const infer::SamplingParams decoding = infer::recommended_sampling();
    report.notes.push_back(fmt::format("Side-by-side replies use the recommended decoding (temperature {}, top-p {}, repeat penalty {} "
                                       "over {} tokens, seed 0; docs/controller.md) with the persona system message the training data "
                                       "uses{} (SFT+DPO too); the prompts open EmpatheticDialogues test conversations, never seen in training.",
                                       decoding.temperature, decoding.top_p, decoding.repeat_penalty, decoding.repeat_last_n,
                                       recipe.style ? " and, for SFT, the style tokens " + recipe.style->text + " it was trained with" : ""));
    report.stages = stages.times();
    report.finished = utc_now();
    report.wall_seconds = now_s() - demo_start;
    eval::write_report(run_dir, report);
    stages.end();

    print_table(report.metrics);
    fmt::print("\nreport: {}/report.html (and report.md), {:.0f} s in all\n", run_dir, report.wall_seconds);
}

}  // namespace

void add_demo_command(CLI::App& app) {
    auto flags = std::make_shared<DemoFlags>();
    auto* demo = app.add_subcommand("demo", "Fine-tune the default model on the bundled samples and write a base-vs-SFT report");
    demo->add_flag("--quick", flags->quick, "A ~3-minute smoke run (configs/demo-quick.yaml) instead of the full demo");
    demo->add_option("--out", flags->out, "Folder of the run folders")->capture_default_str();
    demo->add_option("--questions", flags->questions, "EQ-Bench v2 questions JSON (default: searched, see docs/demo.md)");
    demo->add_option("--model", flags->model, "GGUF model to fine-tune (default: the recipe's, `default`)");
    demo->add_option("--eqbench-limit", flags->eqbench_limit, "EQ-Bench v2 questions asked (0 = the preset's: 10 quick, 40 full)");
    demo->add_option("--ablation", flags->ablation, "ablation.json written by `kindred ablate`, to include its table");
    demo->add_option("--threads", flags->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    demo->add_option("--judge-url", flags->judge_url, "EQ-Bench 3 judge endpoint (OpenAI-compatible); without it EQ-Bench 3 is skipped");
    demo->add_option("--judge-model", flags->judge_model, "Model name the judge endpoint serves");
    demo->add_option("--judge-key-env", flags->judge_key_env, "Environment variable holding the judge's API key");
    demo->add_option("--eqbench3-data", flags->eqbench3_data, "EQ-Bench 3 data files")->capture_default_str();
    demo->add_option("--eqbench3-scenarios", flags->eqbench3_scenarios, "EQ-Bench 3 scenarios the demo runs")->capture_default_str();
    demo->add_option("--eqbench3-max-tokens", flags->eqbench3_max_tokens, "EQ-Bench 3 reply budget in the demo")->capture_default_str();
    demo->add_option("--data", flags->data, "Train on the releases `kindred data fetch` put in this folder instead of the bundled samples")
        ->check(CLI::ExistingDirectory);
    demo->add_option("overrides", flags->overrides, "key=value recipe overrides (e.g. optimisation.max_steps=4)");
    demo->callback([flags] { run_demo(*flags); });
}

}  // namespace kindred::cli
