// train/ablate.cpp — the ablation matrix (see ablate.h).
#include "train/ablate.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metrics_log.h"
#include "eval/plot.h"
#include "infer/loaded_model.h"
#include "model/trainable_decoder.h"
#include "train/chat_dataset.h"
#include "train/safety_teacher.h"
#include "train/sft.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string metric_text(double value, int digits = 4) {
    return std::isfinite(value) ? fmt::format("{:.{}g}", value, digits) : std::string("—");
}

// One training row of max_seq_len tokens, forward and backward, on this machine (seconds).
double time_one_row(model::Decoder& base, const SftRecipe& recipe) {
    model::LoraAdapters adapters(base.config(), recipe.adapter, base.weights().qk_interleaved);
    model::TrainableDecoder trainer(base, adapters, recipe.checkpoint_activations, recipe.max_seq_len, recipe.compute);
    model::TrainBatch batch;
    std::mt19937 rng(1);
    for (std::int64_t t = 0; t < recipe.max_seq_len; ++t) {
        batch.tokens.push_back(static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(base.config().vocab_size)));
        batch.targets.push_back(t + 1 < recipe.max_seq_len ? batch.tokens.back() : kIgnoreTarget);
    }
    const auto start = std::chrono::steady_clock::now();
    trainer.forward_backward(batch, 1.0f / static_cast<float>(recipe.max_seq_len));
    return seconds_since(start);
}

ChatDatasetOptions sft_options(const SftRecipe& recipe, std::size_t context, const std::string& rules) {
    ChatDatasetOptions options;
    options.max_seq_len = static_cast<std::size_t>(recipe.max_seq_len);
    options.context_length = context;
    options.keep_emotion_only = emotion_active(recipe);
    options.teacher_rules = rules;
    return options;
}

bool finished(const fs::path& run) { return fs::exists(run / "adapter" / "adapter_model.safetensors"); }

// Each run's metric over its steps, one line per variant.
void write_chart(const fs::path& path, const std::vector<std::pair<std::string, fs::path>>& runs, const std::string& key,
                 bool dev, const std::string& title, const std::string& y_label) {
    std::vector<eval::PlotSeries> series;
    for (const auto& [name, metrics] : runs) {
        if (!fs::exists(metrics)) continue;
        std::vector<nlohmann::json> records;
        for (const auto& record : read_metrics_log(metrics.string()).records) {
            if (dev) {
                if (!record.contains("dev") || !record["dev"].is_object()) continue;
                auto flat = record["dev"];
                flat["step"] = record["step"];
                records.push_back(std::move(flat));
            } else if (!record.contains("dev")) {
                records.push_back(record);
            }
        }
        auto points = metric_series(records, "step", key);
        if (!points.x.empty()) series.push_back({name, std::move(points.x), std::move(points.y), !dev});
    }
    eval::PlotOptions options;
    options.title = title;
    options.x_label = "step";
    options.y_label = y_label;
    options.smoothing = dev ? 0.0 : 0.6;
    eval::write_line_chart(path.string(), series, options);
}

}  // namespace

const std::vector<AblationVariant>& ablation_variants() {
    static const std::vector<AblationVariant> variants = {
        {"full", "SFT with every head and the safety KL, then DPO", {}, true},
        {"no_emotion_head", "SFT without the emotion head, then DPO", {"heads.emotion=false"}, true},
        {"no_strategy_head", "SFT without the strategy head, then DPO", {"heads.strategy=false"}, true},
        {"no_safety_kl", "SFT without the safety-teacher KL, then DPO", {"safety.enabled=false"}, true},
        {"no_dpo", "the full SFT model, no preference stage", {}, false},
    };
    return variants;
}

AblationSettings read_ablation_settings(Config& config) {
    AblationSettings s;
    s.name = config.get<std::string>("name", s.name);
    s.output_dir = config.get<std::string>("output.dir", s.output_dir);
    s.sft_recipe = config.get<std::string>("sft");
    s.dpo_recipe = config.get<std::string>("dpo");
    for (const char* key : {"sft", "dpo"})
        if (!fs::is_regular_file(config.get<std::string>(key))) config.fail_at(key, "recipe file not found");
    std::vector<std::string> all;
    for (const auto& variant : ablation_variants()) all.push_back(variant.name);
    const auto asked = config.get<std::vector<std::string>>("variants", all);
    for (const auto& name : asked)
        if (std::find(all.begin(), all.end(), name) == all.end())
            config.fail_at("variants", fmt::format("unknown variant '{}' (known: {})", name, fmt::join(all, ", ")));
    for (const auto& name : all)  // the matrix's order, whatever the recipe's
        if (std::find(asked.begin(), asked.end(), name) != asked.end()) s.variants.push_back(name);
    if (s.variants.empty()) config.fail_at("variants", "names no variant");
    s.sft_overrides = config.get<std::vector<std::string>>("sft_overrides", {});
    s.dpo_overrides = config.get<std::vector<std::string>>("dpo_overrides", {});
    const bool any_dpo = std::any_of(s.variants.begin(), s.variants.end(), [](const auto& n) { return n != "no_dpo"; });
    if (any_dpo && s.variants.front() != "full")
        config.fail_at("variants", "the DPO variants share pairs sampled from the full SFT model: include `full`");
    config.finish();
    return s;
}

std::string expected_time_text(const AblationPlan& plan, double seconds_per_row, double seconds_per_sampled_token) {
    // Rows of evaluation and the reference pass cost about a third of a training row (forward only);
    // dev evaluations and checkpoints add roughly 10% on top of the training rows.
    const double training = static_cast<double>(plan.sft_rows + plan.dpo_rows) * seconds_per_row * 1.1;
    const double sampling = static_cast<double>(plan.pair_prompts) * 60.0 * seconds_per_sampled_token;
    const double total = training + sampling;
    return fmt::format("{} variants: {} SFT runs of {} steps and {} DPO runs of {} steps ({} training rows), pairs from "
                       "{} prompts; expected about {:.0f} min on this machine ({:.2f} s per training row measured now)",
                       plan.variants, plan.sft_runs, plan.sft_steps, plan.dpo_runs, plan.dpo_steps,
                       plan.sft_rows + plan.dpo_rows, plan.pair_prompts, total / 60.0, seconds_per_row);
}

eval::Table ablation_table(const std::vector<AblationRow>& rows) {
    eval::Table table;
    table.caption = "Ablations: the final model of each variant on the dev split and the dev pairs (same seed, data "
                    "and steps)";
    table.header = {"variant",          "dev NLL",           "emotion macro-F1", "strategy acc.", "VA MSE",
                    "safety KL",        "preference acc.",   "reward acc. (DPO)", "reward margin (DPO)", "time"};
    for (const auto& row : rows) {
        table.rows.push_back({row.variant, metric_text(row.dev.nll), metric_text(row.dev.emotion_macro_f1),
                              metric_text(row.dev.strategy_accuracy), metric_text(row.dev.va_mse),
                              metric_text(row.dev.safe_kl), metric_text(row.preference_accuracy, 3),
                              row.dpo ? metric_text(row.dpo->batch.rewards_accuracies, 3) : "—",
                              row.dpo ? metric_text(row.dpo->batch.rewards_margins) : "—",
                              row.reused ? "reused" : fmt::format("{:.0f} s", row.seconds)});
    }
    return table;
}

nlohmann::json to_json(const AblationRow& row) {
    nlohmann::json out = {{"variant", row.variant}, {"dev", to_json(row.dev)}, {"seconds", row.seconds}};
    out["preference_accuracy"] = std::isfinite(row.preference_accuracy) ? nlohmann::json(row.preference_accuracy)
                                                                        : nlohmann::json();
    if (row.dpo) out["dpo"] = to_json(*row.dpo);
    return out;
}

AblationRow ablation_row_from_json(const nlohmann::json& json, const std::string& where) {
    if (!json.is_object() || !json.contains("variant") || !json["variant"].is_string() || !json.contains("dev"))
        fail("{}: an ablation row needs 'variant' and 'dev'", where);
    AblationRow row;
    row.variant = json["variant"].get<std::string>();
    row.dev = dev_metrics_from_json(json["dev"], where);
    if (json.contains("preference_accuracy") && json["preference_accuracy"].is_number())
        row.preference_accuracy = json["preference_accuracy"].get<double>();
    if (json.contains("dpo") && json["dpo"].is_object()) {
        const auto& d = json["dpo"];
        DpoDevMetrics m;
        const auto number = [&](const char* key) {
            if (!d.contains(key) || !d[key].is_number()) fail("{}: dpo.{}: expected a number", where, key);
            return d[key].get<double>();
        };
        m.batch.loss = number("loss");
        m.batch.rewards_accuracies = number("rewards/accuracies");
        m.batch.rewards_margins = number("rewards/margins");
        m.batch.rewards_chosen = number("rewards/chosen");
        m.batch.rewards_rejected = number("rewards/rejected");
        m.batch.logps_chosen = number("logps/chosen");
        m.batch.logps_rejected = number("logps/rejected");
        m.preference_accuracy = number("preference_accuracy");
        row.dpo = m;
    }
    if (json.contains("seconds") && json["seconds"].is_number()) row.seconds = json["seconds"].get<double>();
    return row;
}

std::vector<AblationRow> run_ablation(const AblationSettings& settings, const std::function<void(const std::string&)>& log) {
    const auto say = [&](const std::string& line) {
        if (log) log(line);
    };
    const fs::path root = fs::path(settings.output_dir) / settings.name;
    const fs::path pairs_dir = root / "pairs";
    const std::string train_pairs_path = (pairs_dir / "train.jsonl").string();
    const std::string dev_pairs_path = (pairs_dir / "dev.jsonl").string();
    fs::create_directories(root);
    const auto variant_named = [](const std::string& name) -> const AblationVariant& {
        return *std::find_if(ablation_variants().begin(), ablation_variants().end(),
                             [&](const auto& v) { return v.name == name; });
    };
    // no_dpo is the full SFT model: the same run, never trained twice.
    const auto sft_run_of = [&](const AblationVariant& v) { return root / (v.dpo ? v.name + "-sft" : "full-sft"); };
    const auto sft_recipe_of = [&](const AblationVariant& v) {
        Config config = Config::load(settings.sft_recipe);
        config.apply_overrides(settings.sft_overrides);
        if (v.dpo) config.apply_overrides(v.sft_overrides);
        config.apply_override("name=" + sft_run_of(v).filename().string());
        config.apply_override("output.dir=" + root.string());
        return read_sft_recipe(config);
    };
    // The DPO recipe pointed at this matrix's folders.
    const auto dpo_recipe_of = [&](const fs::path& reference, const std::string& name) {
        Config config = Config::load(settings.dpo_recipe);
        config.apply_overrides(settings.dpo_overrides);
        config.apply_override("reference.adapter=" + reference.string());
        config.apply_override("name=" + name);
        config.apply_override("output.dir=" + root.string());
        config.apply_override("pairs.out=" + train_pairs_path);
        config.apply_override("data.path=" + train_pairs_path);
        if (config.has("pairs.dev_prompts")) {
            config.apply_override("pairs.dev_out=" + dev_pairs_path);
            config.apply_override("data.dev_path=" + dev_pairs_path);
        }
        return read_dpo_recipe(config);
    };

    const AblationVariant& full = ablation_variants().front();
    const SftRecipe full_recipe = sft_recipe_of(full);
    if (full_recipe.dev_path.empty()) fail("{}: the ablation measures on dev: set data.dev_path", settings.sft_recipe);
    auto model = infer::LoadedModel::open(full_recipe.model, "", full_recipe.quantize);
    model::Decoder& base = model->decoder();
    const auto context = static_cast<std::size_t>(base.config().context_length);
    const text::ChatTemplate& chat = model->require_chat_template();
    // One dev set for every variant, with the teacher's inputs (so each final model's safety KL is
    // measured, no_safety_kl's included) and the emotion-only examples (so the emotion F1 is); one
    // teacher for it, lent to every SFT run with the KL on.
    SftRecipe dev_recipe = full_recipe;
    dev_recipe.objective.emotion = std::max(dev_recipe.objective.emotion, 1.0);
    dev_recipe.heads.emotion = true;
    const std::string rules = full_recipe.safety.rules == "default" ? default_safety_rules() : full_recipe.safety.rules;
    const ChatDataset dev = load_chat_dataset(full_recipe.dev_path, model->tokenizer(), chat,
                                              sft_options(dev_recipe, context, rules));
    SafetyTeacher dev_teacher(base, static_cast<float>(full_recipe.safety.temperature), full_recipe.safety.top_k);

    // The plan and its expected time, before anything long runs.
    const DpoRecipe dpo_settings = dpo_recipe_of(root, "plan");  // any existing folder: only the numbers are read
    AblationPlan plan;
    plan.variants = settings.variants.size();
    plan.sft_steps = full_recipe.max_steps;
    plan.dpo_steps = dpo_settings.run.max_steps;
    std::vector<fs::path> sft_to_train;
    for (const auto& name : settings.variants) {
        const auto& variant = variant_named(name);
        const fs::path sft_run = sft_run_of(variant);
        if (!finished(sft_run) && std::find(sft_to_train.begin(), sft_to_train.end(), sft_run) == sft_to_train.end()) {
            sft_to_train.push_back(sft_run);
            plan.sft_rows += full_recipe.max_steps * full_recipe.micro_batch * full_recipe.grad_accumulation;
        }
        if (variant.dpo && !finished(root / (name + "-dpo"))) {
            ++plan.dpo_runs;
            plan.dpo_rows += dpo_settings.run.max_steps * dpo_settings.run.micro_batch * dpo_settings.run.grad_accumulation;
        }
    }
    plan.sft_runs = sft_to_train.size();
    if (!fs::exists(train_pairs_path)) {
        plan.pair_prompts = dpo_settings.pairs.max_prompts + dpo_settings.pairs.dev_max_prompts;
        // The pairs are built only after the full SFT run: a missing prompts file must stop the
        // matrix now, not after that run.
        try {
            check_pairs_inputs(dpo_settings.pairs);
        } catch (const Error& error) {
            fail("{}: {}", settings.dpo_recipe, error.what());
        }
    }
    const double row_seconds = time_one_row(base, full_recipe);
    say(expected_time_text(plan, row_seconds, row_seconds / 40.0));

    std::optional<PairDataset> train_pairs, dev_pairs;
    // Built once, sampled by the full SFT model, so every variant's DPO sees the same pairs.
    const auto ensure_pairs = [&] {
        if (train_pairs) return;
        const fs::path sampler_adapter = root / "full-sft" / "adapter";
        const DpoRecipe recipe = dpo_recipe_of(sampler_adapter, "pairs");
        if (!fs::exists(train_pairs_path) || (dpo_settings.pairs.dev_out.empty() ? false : !fs::exists(dev_pairs_path))) {
            say(fmt::format("pairs: from {} into {}", recipe.pairs.prompts, pairs_dir.string()));
            auto sampler = infer::LoadedModel::open(full_recipe.model, sampler_adapter.string(), full_recipe.quantize);
            build_pairs(recipe.pairs, *sampler, {}, log);
        }
        std::vector<std::string> warnings;
        train_pairs = load_recipe_pairs(train_pairs_path, *model, recipe, warnings);
        if (fs::exists(dev_pairs_path)) dev_pairs = load_recipe_pairs(dev_pairs_path, *model, recipe, warnings);
        for (const auto& line : warnings) say("warning: " + line);
    };

    std::vector<AblationRow> rows;
    std::vector<std::pair<std::string, fs::path>> sft_curves, dpo_curves;
    for (const auto& name : settings.variants) {
        const auto& variant = variant_named(name);
        const auto start = std::chrono::steady_clock::now();
        AblationRow row;
        row.variant = name;
        row.reused = true;
        const fs::path sft_run = sft_run_of(variant);
        if (!finished(sft_run)) {
            row.reused = false;
            const SftRecipe recipe = sft_recipe_of(variant);
            say(fmt::format("{}: SFT ({}), {} steps into {}", name, variant.description, recipe.max_steps, sft_run.string()));
            const ChatDataset train = load_chat_dataset(recipe.data_path, model->tokenizer(), chat,
                                                        sft_options(recipe, context, safety_rules_text(recipe)));
            SftOptions options;
            options.run_dir = sft_run.string();
            options.resume = true;
            options.base_model = model->path();
            options.pad_id = model->tokenizer().eos_id().value_or(0);
            options.dev = dev.examples;
            if (recipe.evaluation.max_examples > 0 && options.dev.size() > static_cast<std::size_t>(recipe.evaluation.max_examples))
                options.dev = options.dev.first(static_cast<std::size_t>(recipe.evaluation.max_examples));
            options.dev_teacher = safety_active(recipe) ? &dev_teacher : nullptr;
            if (!run_sft(recipe, base, train.examples, options).finished)
                fail("{}: SFT stopped before its last step", sft_run.string());
        }
        if (variant.dpo) sft_curves.emplace_back(name, sft_run / "metrics.jsonl");
        ensure_pairs();

        const DpoRecipe dpo_recipe = dpo_recipe_of(sft_run / "adapter", name + "-dpo");
        fs::path final_adapter = sft_run / "adapter";
        if (variant.dpo) {
            const fs::path dpo_run = root / (name + "-dpo");
            if (!finished(dpo_run)) {
                row.reused = false;
                say(fmt::format("{}: DPO, {} steps from {}", name, dpo_recipe.run.max_steps, final_adapter.string()));
                DpoOptions options;
                options.run.run_dir = dpo_run.string();
                options.run.resume = true;
                options.run.base_model = model->path();
                options.run.progress_label = "dpo";
                options.model_path = model->path();
                options.pad_id = model->tokenizer().eos_id().value_or(0);
                options.dev = dev_pairs ? &*dev_pairs : nullptr;
                if (!run_dpo(dpo_recipe, base, *train_pairs, options).finished)
                    fail("{}: DPO stopped before its last step", dpo_run.string());
            }
            dpo_curves.emplace_back(name, dpo_run / "metrics.jsonl");
            final_adapter = dpo_run / "adapter";
        }

        say(fmt::format("{}: measuring {} on dev", name, final_adapter.string()));
        row.dev = evaluate_adapter_on_dev(base, final_adapter.string(), &dev_teacher, dev.examples,
                                          static_cast<std::size_t>(full_recipe.max_seq_len), full_recipe.compute);
        if (dev_pairs) {
            const auto score_with = [&](const fs::path& adapter_dir) {
                const peft::Adapter adapter = peft::read_adapter(adapter_dir.string());
                model::LoraAdapters adapters(base.config(),
                                             infer::lora_config(adapter.config, base.config(),
                                                                (adapter_dir / "adapter_config.json").string()),
                                             base.weights().qk_interleaved);
                infer::set_adapter_values(adapters, adapter, base.config(), (adapter_dir / "adapter_model.safetensors").string(),
                                          "being trained");
                model::TrainableDecoder scorer(base, adapters, false, dpo_recipe.run.max_seq_len, dpo_recipe.run.compute);
                return score_pairs(scorer, *dev_pairs, static_cast<std::size_t>(dpo_recipe.run.max_seq_len));
            };
            // The variant's SFT reference on the dev pairs: cached beside them by its DPO run.
            const fs::path reference_dir = sft_run / "adapter";
            const auto reference = cached_reference_log_probs(
                reference_cache_path(dev_pairs->path),
                reference_cache_key(model->path(), dpo_recipe.run.quantize, reference_dir.string(), dpo_recipe.run.compute, *dev_pairs),
                dev_pairs->examples.size(), [&] { return score_with(reference_dir); });
            const auto policy = variant.dpo ? score_with(final_adapter) : reference.pairs;
            const DpoDevMetrics metrics = dev_pair_metrics(policy, reference.pairs, *dev_pairs, dpo_recipe.loss);
            row.preference_accuracy = metrics.preference_accuracy;
            if (variant.dpo) row.dpo = metrics;
        }
        row.seconds = seconds_since(start);
        say(fmt::format("{}: {}", name, to_json(row).dump()));
        rows.push_back(row);
    }

    nlohmann::json all = nlohmann::json::array();
    for (const auto& row : rows) all.push_back(to_json(row));
    write_file_atomically((root / "ablation.json").string(), all.dump(1));
    write_file_atomically((root / "ablation.md").string(), "# Ablations\n\n" + eval::table_markdown(ablation_table(rows)));
    write_chart(root / "ablation_dev_nll.svg", sft_curves, "nll", true, "dev NLL during SFT, per variant",
                "nats per reply token");
    write_chart(root / "ablation_rewards.svg", dpo_curves, "rewards/accuracies", false,
                "DPO reward accuracy per step, per variant", "share of pairs");
    return rows;
}

}  // namespace kindred::train
