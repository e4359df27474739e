// train/tune.cpp — the λ search (see tune.h).
#include "train/tune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metrics_log.h"
#include "data/split.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kGridKey = "tune.grid";

bool is_tunable(std::string_view key) {
    return std::find(kTunableKeys.begin(), kTunableKeys.end(), key) != kTunableKeys.end();
}

std::string tunable_list() {
    std::string list;
    for (const auto key : kTunableKeys) list += fmt::format("{}{}", list.empty() ? "" : ", ", key);
    return list;
}

// Walks tune.grid down to its leaves; each leaf path below tune.grid is a recipe key.
void read_axes(Config& config, const std::string& path, TuneSpace& space) {
    const auto children = config.keys(path);
    if (children.empty()) {
        const std::string key = path.substr(kGridKey.size() + 1);
        if (!is_tunable(key)) {
            const auto best = closest_key(key, kTunableKeys);
            const std::string hint = best ? fmt::format(" (did you mean '{}'?)", *best) : "";
            config.fail_at(path, fmt::format("is not a tunable key{}: tune.grid may vary {}", hint, tunable_list()));
        }
        auto values = config.get<std::vector<double>>(path);
        if (values.empty()) config.fail_at(path, "must list at least one value");
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (!std::isfinite(values[i]) || values[i] < 0.0)
                config.fail_at(path, fmt::format("value {} must be a finite weight >= 0", values[i]));
            for (std::size_t j = 0; j < i; ++j) {
                if (values[j] == values[i]) config.fail_at(path, fmt::format("lists {} twice", values[i]));
            }
        }
        space.axes.emplace_back(key, std::move(values));
        return;
    }
    for (const auto& child : children) read_axes(config, path + "." + child, space);
}

// Uniform in [0, n) from 64-bit draws, rejecting the 2^64 mod n lowest values so every residue is
// equally likely; spelled out because std::uniform_int_distribution differs between libraries.
std::uint64_t uniform_below(std::mt19937_64& generator, std::uint64_t n) {
    const std::uint64_t threshold = (~n + 1) % n;  // 2^64 mod n
    while (true) {
        const std::uint64_t draw = generator();
        if (draw >= threshold) return draw % n;
    }
}

// Mixed radix, the first axis most significant: index 0, 1, 2... walks the grid in trial order.
std::vector<double> combination(const TuneSpace& space, std::size_t index) {
    std::vector<double> values(space.axes.size());
    for (std::size_t a = space.axes.size(); a-- > 0;) {
        const auto& axis = space.axes[a].second;
        values[a] = axis[index % axis.size()];
        index /= axis.size();
    }
    return values;
}

std::string trial_name(std::size_t index) { return fmt::format("trial-{:03}", index); }

// A stable fingerprint of the trial recipe for resume (std::hash is not stable across builds).
std::string fingerprint(std::string_view text) { return fmt::format("{:016x}", data::fnv1a64(text)); }

// The parts of J in term order; NaN where the metric is missing.
constexpr std::array<std::string_view, 4> kTermNames = {"nll", "(1 - emotion_macro_f1)", "(1 - strategy_macro_f1)", "va_mse"};
std::array<double, 4> objective_parts(const DevMetrics& m) {
    return {m.nll, 1.0 - m.emotion_macro_f1, 1.0 - m.strategy_macro_f1, m.va_mse};
}

nlohmann::json lambda_json(const std::vector<std::pair<std::string, double>>& lambdas) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& [key, value] : lambdas) object[key] = value;
    return object;
}

nlohmann::json record_json(const TrialRecord& record, std::int64_t steps, const std::string& recipe_hash) {
    nlohmann::json json = {{"trial", record.index},   {"name", record.name}, {"lambda", lambda_json(record.lambdas)},
                           {"steps", steps},           {"recipe", recipe_hash}, {"status", record.failed() ? "failed" : "ok"},
                           {"wall_s", record.wall_s}};
    if (record.failed()) {
        json["error"] = record.error;
    } else {
        json["dev"] = to_json(record.dev);
        json["objective"] = record.objective;
    }
    return json;
}

// The earlier run's record for `spec` when it can stand for the trial (see tune.h), else nothing.
std::optional<TrialRecord> reusable(const nlohmann::json& json, const TrialSpec& spec, std::int64_t steps,
                                    const std::string& recipe_hash, const std::string& where) {
    const auto field = [&](const char* name) { return json.contains(name) ? json[name] : nlohmann::json(); };
    if (field("status") != "ok" || field("trial") != spec.index || field("name") != spec.name || field("steps") != steps ||
        field("recipe") != recipe_hash || field("lambda") != lambda_json(spec.lambdas) || !field("dev").is_object())
        return std::nullopt;
    TrialRecord record;
    record.index = spec.index;
    record.name = spec.name;
    record.lambdas = spec.lambdas;
    record.dev = dev_metrics_from_json(json["dev"], where);
    record.wall_s = field("wall_s").is_number() ? field("wall_s").get<double>() : 0.0;
    record.reused = true;
    return record;
}

// "nll + (1 - emotion_macro_f1)": J's terms as written in best.yaml and trials.md.
std::string formula(const std::vector<std::string>& terms) {
    std::string text;
    for (const auto& term : terms) text += fmt::format("{}{}", text.empty() ? "" : " + ", term);
    return text.empty() ? "–" : text;
}

std::string format_metric(double value) { return std::isnan(value) ? "–" : fmt::format("{:.4f}", value); }

// One line of markdown text: a pipe would end a table cell, a newline the paragraph.
std::string markdown_line(std::string_view text) {
    std::string line;
    for (const char c : text) {
        if (c == '|') line += "\\|";
        else line += c == '\n' || c == '\r' ? ' ' : c;
    }
    return line;
}

}  // namespace

std::size_t TuneSpace::size() const {
    std::size_t total = 1;
    for (const auto& axis : axes) {
        if (axis.second.empty()) return 0;
        if (total > std::numeric_limits<std::size_t>::max() / axis.second.size()) return std::numeric_limits<std::size_t>::max();
        total *= axis.second.size();
    }
    return total;
}

TuneSettings read_tune_settings(Config& config) {
    TuneSettings settings;
    settings.steps = config.get<std::int64_t>("tune.steps", 30);
    if (settings.steps < 1) config.fail_at("tune.steps", "must be at least 1");
    const auto search = config.get<std::string>("tune.search", "grid");
    if (search == "grid") settings.search = TuneSearch::Grid;
    else if (search == "random") settings.search = TuneSearch::Random;
    else config.fail_at("tune.search", "must be 'grid' or 'random'");
    settings.trials = config.get<std::int64_t>("tune.trials", 0);
    if (settings.trials < 0) config.fail_at("tune.trials", "must not be negative");
    const auto seed = config.get<std::int64_t>("tune.seed", 0);
    if (seed < 0) config.fail_at("tune.seed", "must not be negative");
    settings.seed = static_cast<std::uint64_t>(seed);

    const std::string grid(kGridKey);
    if (!config.has(grid)) config.fail_at(grid, "is missing: list candidate values per λ, e.g. tune.grid.objective.emotion: [0, 0.5]");
    if (config.keys(grid).empty()) config.fail_at(grid, "must map recipe keys to lists of values (tune.grid.objective.<term>: [...])");
    read_axes(config, grid, settings.space);

    const std::size_t size = settings.space.size();
    if (size > kMaxTuneTrials)
        config.fail_at(grid, fmt::format("spans more than {} combinations; narrow the lists", kMaxTuneTrials));
    if (settings.search == TuneSearch::Grid && settings.trials != 0)
        config.fail_at("tune.trials", fmt::format("applies to random search; grid search runs all {} combinations", size));
    if (settings.search == TuneSearch::Random) {
        if (settings.trials == 0) config.fail_at("tune.trials", "must be set (at least 1) for random search");
        if (static_cast<std::uint64_t>(settings.trials) > size)
            config.fail_at("tune.trials", fmt::format("asks for {} distinct draws but the grid holds {} combinations; use grid search",
                                                      settings.trials, size));
    }
    return settings;
}

std::vector<std::vector<double>> plan_trials(const TuneSettings& settings) {
    const std::size_t size = settings.space.size();
    if (size == 0 || size > kMaxTuneTrials) fail("tune: a grid of {} combinations (must be 1..{})", size, kMaxTuneTrials);
    std::vector<std::size_t> order(size);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (settings.search == TuneSearch::Random) {
        const auto count = static_cast<std::size_t>(settings.trials);
        if (settings.trials < 1 || count > size) fail("tune: {} random draws from a grid of {} combinations", settings.trials, size);
        // The first `count` steps of a Fisher–Yates shuffle: distinct draws, each uniform over the rest.
        std::mt19937_64 generator(settings.seed);
        for (std::size_t i = 0; i < count; ++i) std::swap(order[i], order[i + uniform_below(generator, size - i)]);
        order.resize(count);
    }
    std::vector<std::vector<double>> trials;
    trials.reserve(order.size());
    for (const auto index : order) trials.push_back(combination(settings.space, index));
    return trials;
}

std::string without_tune_section(std::string_view yaml, const std::string& source) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        fail("{} line {}: invalid YAML: {}", source, e.mark.line + 1, e.msg);
    }
    if (!root.IsMap()) fail("{}: a recipe must be a mapping of keys to values", source);
    root.remove("tune");
    YAML::Emitter out;
    out << root;
    return std::string(out.c_str()) + "\n";
}

Config TrialSpec::config() const {
    Config config = Config::parse(recipe_yaml, recipe_source);
    config.apply_overrides(overrides);
    return config;
}

double dev_objective(const DevMetrics& metrics) {
    double sum = 0.0;
    bool any = false;
    for (const double part : objective_parts(metrics)) {
        if (std::isnan(part)) continue;
        sum += part;
        any = true;
    }
    return any ? sum : NAN;
}

std::vector<double> dev_objectives(std::span<const DevMetrics> trials, std::vector<std::string>* terms) {
    std::array<double, kTermNames.size()> worst;
    worst.fill(NAN);
    for (const auto& metrics : trials) {
        const auto parts = objective_parts(metrics);
        for (std::size_t t = 0; t < parts.size(); ++t) {
            if (!std::isnan(parts[t]) && !(parts[t] <= worst[t])) worst[t] = parts[t];  // NaN worst: first value
        }
    }
    if (terms != nullptr) {
        terms->clear();
        for (std::size_t t = 0; t < worst.size(); ++t) {
            if (!std::isnan(worst[t])) terms->emplace_back(kTermNames[t]);
        }
    }
    std::vector<double> objectives;
    objectives.reserve(trials.size());
    for (const auto& metrics : trials) {
        const auto parts = objective_parts(metrics);
        double sum = 0.0;
        bool any = false;
        for (std::size_t t = 0; t < parts.size(); ++t) {
            if (std::isnan(worst[t])) continue;
            sum += std::isnan(parts[t]) ? worst[t] : parts[t];
            any = true;
        }
        objectives.push_back(any ? sum : NAN);
    }
    return objectives;
}

std::vector<TrialSpec> trial_specs(const TuneOptions& options) {
    const auto& settings = options.settings;
    const auto plan = plan_trials(settings);
    const std::string recipe = without_tune_section(options.recipe_yaml, options.recipe_source);
    std::vector<TrialSpec> specs;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        TrialSpec spec;
        spec.index = i;
        spec.name = trial_name(i);
        spec.recipe_yaml = recipe;
        spec.recipe_source = fmt::format("{} (resolved for tune {})", options.recipe_source, spec.name);
        spec.run_dir = (fs::path(options.out_dir) / spec.name).string();
        for (std::size_t a = 0; a < plan[i].size(); ++a) {
            const auto& key = settings.space.axes[a].first;
            spec.lambdas.emplace_back(key, plan[i][a]);
            spec.overrides.push_back(fmt::format("{}={}", key, plan[i][a]));
        }
        spec.overrides.push_back(fmt::format("optimisation.max_steps={}", settings.steps));
        spec.overrides.push_back(fmt::format("name={}", spec.name));
        spec.overrides.push_back(fmt::format("output.dir={}", nlohmann::json(options.out_dir).dump()));  // quoted: any path
        specs.push_back(std::move(spec));
    }
    return specs;
}

TuneResult run_tune(const TuneOptions& options, const std::function<DevMetrics(const TrialSpec&)>& run_trial) {
    const auto& settings = options.settings;
    const auto specs = trial_specs(options);
    const std::string& recipe = specs.front().recipe_yaml;  // plan_trials never plans nothing
    const std::string recipe_hash = fingerprint(recipe);

    std::error_code ec;
    fs::create_directories(options.out_dir, ec);
    if (ec) fail("{}: cannot create the tune folder: {}", options.out_dir, ec.message());
    const std::string log_path = (fs::path(options.out_dir) / "trials.jsonl").string();

    // Resume: keep the records that still describe a planned trial, and only those.
    std::vector<std::optional<TrialRecord>> earlier(specs.size());
    if (fs::exists(log_path)) {
        const auto contents = read_metrics_log(log_path);
        std::string kept;
        for (std::size_t line = 0; line < contents.records.size(); ++line) {
            const auto& json = contents.records[line];
            if (!json.contains("trial") || !json["trial"].is_number_unsigned()) continue;
            const auto index = json["trial"].get<std::size_t>();
            if (index >= specs.size() || earlier[index]) continue;
            earlier[index] = reusable(json, specs[index], settings.steps, recipe_hash, fmt::format("{} line {}", log_path, line + 1));
            if (earlier[index]) kept += json.dump() + "\n";
        }
        write_file_atomically(log_path, kept);
    }
    MetricsLog log(log_path);

    TuneResult result;
    for (const auto& spec : specs) {
        TrialRecord record;
        if (earlier[spec.index]) {
            record = *earlier[spec.index];
        } else {
            record.index = spec.index;
            record.name = spec.name;
            record.lambdas = spec.lambdas;
            fs::remove_all(spec.run_dir, ec);  // a trial that runs starts from nothing an earlier run left
            if (ec) fail("{}: cannot clear the trial folder: {}", spec.run_dir, ec.message());
            const auto start = std::chrono::steady_clock::now();
            try {
                record.dev = run_trial(spec);
            } catch (const std::exception& e) {
                record.error = *e.what() != '\0' ? e.what() : "failed without a message";
            }
            record.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        if (!record.failed()) record.objective = dev_objective(record.dev);  // the trial's own J until all are in
        if (!record.reused) log.write(record_json(record, settings.steps, recipe_hash));
        result.trials.push_back(std::move(record));
        if (options.on_trial) options.on_trial(result.trials.back(), result.trials.size(), specs.size());
    }

    std::vector<DevMetrics> succeeded;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < result.trials.size(); ++i) {
        if (!result.trials[i].failed()) {
            succeeded.push_back(result.trials[i].dev);
            which.push_back(i);
        }
    }
    if (succeeded.empty())
        fail("tune: all {} trials failed (see {}); {}: {}", result.trials.size(), log_path, result.trials[0].name, result.trials[0].error);
    const auto objectives = dev_objectives(succeeded, &result.terms);
    if (result.terms.empty())
        fail("tune: no trial produced a dev metric the objective uses (nll, emotion/strategy macro-F1, va_mse); "
             "does the recipe set data.dev_path?");
    for (std::size_t k = 0; k < which.size(); ++k) result.trials[which[k]].objective = objectives[k];
    result.best = which[0];
    for (const auto i : which) {
        if (result.trials[i].objective < result.trials[result.best].objective) result.best = i;  // strict: ties keep the earlier
    }

    const auto& best = result.trials[result.best];
    Config chosen = Config::parse(recipe, options.recipe_source);
    for (const auto& [key, value] : best.lambdas) chosen.apply_override(fmt::format("{}={}", key, value));
    result.best_yaml = fmt::format(
        "# Chosen by `kindred tune` from {} ({} trials of {} steps): {} had the lowest dev objective\n"
        "# J = {} = {:.4f}. The table of trials is trials.md beside this file.\n{}",
        options.recipe_source, result.trials.size(), settings.steps, best.name, formula(result.terms), best.objective,
        chosen.dump());
    write_file_atomically((fs::path(options.out_dir) / "best.yaml").string(), result.best_yaml);
    write_file_atomically((fs::path(options.out_dir) / "trials.md").string(), trials_table(result));
    return result;
}

std::string trials_table(const TuneResult& result) {
    struct Column {
        std::string_view title;
        double DevMetrics::*field;
    };
    static constexpr std::array<Column, 8> kColumns = {{{"dev NLL", &DevMetrics::nll},
                                                        {"emotion F1", &DevMetrics::emotion_macro_f1},
                                                        {"emotion F1 (multi-label)", &DevMetrics::emotion_multilabel_f1},
                                                        {"strategy F1", &DevMetrics::strategy_macro_f1},
                                                        {"strategy acc", &DevMetrics::strategy_accuracy},
                                                        {"VA MSE", &DevMetrics::va_mse},
                                                        {"VA MAE", &DevMetrics::va_mae},
                                                        {"safety KL", &DevMetrics::safe_kl}}};
    std::vector<const Column*> columns;  // only metrics some trial has
    for (const auto& column : kColumns) {
        if (std::any_of(result.trials.begin(), result.trials.end(), [&](const auto& t) { return !std::isnan(t.dev.*column.field); }))
            columns.push_back(&column);
    }
    std::vector<std::string> axes;
    if (!result.trials.empty()) {
        for (const auto& lambda : result.trials[0].lambdas) axes.push_back(lambda.first);
    }

    std::vector<std::size_t> order(result.trials.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const auto& x = result.trials[a];
        const auto& y = result.trials[b];
        if (x.failed() != y.failed()) return y.failed();
        return !x.failed() && x.objective < y.objective;
    });

    std::string text = fmt::format("Dev objective J = {} (lower is better).\n\n| | trial |", formula(result.terms));
    std::string rule = "|---|---|";
    for (const auto& axis : axes) {
        text += fmt::format(" {} |", axis);
        rule += "---:|";
    }
    for (const auto* column : columns) {
        text += fmt::format(" {} |", column->title);
        rule += "---:|";
    }
    text += " J | time (s) |\n" + rule + "---:|---:|\n";
    for (const auto i : order) {
        const auto& trial = result.trials[i];
        text += fmt::format("| {} | {} |", i == result.best ? "**chosen**" : "", trial.name);
        for (const auto& lambda : trial.lambdas) text += fmt::format(" {} |", lambda.second);
        for (const auto* column : columns) text += fmt::format(" {} |", format_metric(trial.dev.*column->field));
        text += fmt::format(" {} | {:.1f} |\n", trial.failed() ? "failed" : format_metric(trial.objective), trial.wall_s);
    }
    for (const auto& trial : result.trials) {
        if (trial.failed()) text += fmt::format("\n{} failed: {}\n", trial.name, markdown_line(trial.error));
    }
    return text;
}

}  // namespace kindred::train
