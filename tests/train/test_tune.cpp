// Tests for train/tune.h without training: the `tune:` section's validation (errors name the key and
// its line), grid order and seeded random draws, the dev objective J and its common-term rule, and
// run_tune over a fake trial whose dev metrics are a known function of λ (best pick, ties, failed
// trials, the files, resume).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "core/metrics_log.h"
#include "train/tune.h"
#include "tiny_sft_model.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;

constexpr const char* kRecipe = R"(name: base
optimisation:
  lr: 0.001
  max_steps: 500
objective:
  lm: 1.0
  emotion: 0.5
tune:
  steps: 7
  grid:
    objective:
      emotion: [0.0, 0.5, 1.0]
      strategy: [0.25, 2]
)";

std::string error_of(const std::function<void()>& body) {
    try {
        body();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

TuneSettings settings_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
    Config config = Config::parse(yaml, "recipe.yaml");
    config.apply_overrides(overrides);
    return read_tune_settings(config);
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(TuneSettings, ReadsTheSectionInFileOrderAndLeavesTheRecipeComplete) {
    Config config = Config::parse(kRecipe, "recipe.yaml");
    const auto settings = read_tune_settings(config);
    EXPECT_EQ(settings.steps, 7);
    EXPECT_EQ(settings.search, TuneSearch::Grid);
    ASSERT_EQ(settings.space.axes.size(), 2u);
    EXPECT_EQ(settings.space.axes[0].first, "objective.emotion");
    EXPECT_EQ(settings.space.axes[0].second, (std::vector<double>{0.0, 0.5, 1.0}));
    EXPECT_EQ(settings.space.axes[1].first, "objective.strategy");
    EXPECT_EQ(settings.space.size(), 6u);
    // Every tune key was read: finish() only sees the keys the trainer has not read yet.
    config.get<std::string>("name");
    config.get<double>("optimisation.lr");
    config.get<std::int64_t>("optimisation.max_steps");
    config.get<double>("objective.lm");
    config.get<double>("objective.emotion");
    EXPECT_NO_THROW(config.finish());
}

TEST(TuneSettings, BadKeysAndValuesNameTheKeyAndLine) {
    const std::string base = "tune:\n  grid:\n    objective:\n";
    // Line 4 is the first grid entry.
    auto message = error_of([&] { settings_of(base + "      emotin: [0.0, 0.5]\n"); });
    EXPECT_NE(message.find("recipe.yaml line 4"), std::string::npos) << message;
    EXPECT_NE(message.find("'tune.grid.objective.emotin' is not a tunable key"), std::string::npos) << message;
    EXPECT_NE(message.find("did you mean 'objective.emotion'"), std::string::npos) << message;

    message = error_of([&] { settings_of("tune:\n  grid:\n    optimisation:\n      lr: [0.001]\n"); });
    EXPECT_NE(message.find("'tune.grid.optimisation.lr' is not a tunable key"), std::string::npos) << message;
    EXPECT_NE(message.find("objective.safety_kl"), std::string::npos) << message;  // lists what is tunable

    message = error_of([&] { settings_of(base + "      emotion: [0.0, -1]\n"); });
    EXPECT_NE(message.find("'tune.grid.objective.emotion' value -1 must be a finite weight >= 0"), std::string::npos) << message;
    message = error_of([&] { settings_of(base + "      emotion: [0.5, 0.5]\n"); });
    EXPECT_NE(message.find("lists 0.5 twice"), std::string::npos) << message;
    message = error_of([&] { settings_of(base + "      emotion: []\n"); });
    EXPECT_NE(message.find("must list at least one value"), std::string::npos) << message;
    message = error_of([&] { settings_of(base + "      emotion: [high]\n"); });
    EXPECT_NE(message.find("'tune.grid.objective.emotion.0' must be a number"), std::string::npos) << message;
    message = error_of([&] { settings_of(base + "      emotion: .nan\n"); });
    EXPECT_NE(message.find("must be a list of a number"), std::string::npos) << message;

    message = error_of([&] { settings_of("tune:\n  steps: 3\n"); });
    EXPECT_NE(message.find("'tune.grid' is missing"), std::string::npos) << message;
    message = error_of([&] { settings_of("tune:\n  grid: [1, 2]\n"); });
    EXPECT_NE(message.find("recipe.yaml line 2: 'tune.grid' must map recipe keys"), std::string::npos) << message;
    message = error_of([&] { settings_of(kRecipe, {"tune.steps=0"}); });
    EXPECT_NE(message.find("override 'tune.steps=0': 'tune.steps' must be at least 1"), std::string::npos) << message;
    message = error_of([&] { settings_of(kRecipe, {"tune.search=bayes"}); });
    EXPECT_NE(message.find("'tune.search' must be 'grid' or 'random'"), std::string::npos) << message;
    message = error_of([&] { settings_of(kRecipe, {"tune.trials=3"}); });
    EXPECT_NE(message.find("'tune.trials' applies to random search; grid search runs all 6 combinations"), std::string::npos)
        << message;
    message = error_of([&] { settings_of(kRecipe, {"tune.search=random"}); });
    EXPECT_NE(message.find("'tune.trials' must be set"), std::string::npos) << message;
    message = error_of([&] { settings_of(kRecipe, {"tune.search=random", "tune.trials=7"}); });
    EXPECT_NE(message.find("asks for 7 distinct draws but the grid holds 6 combinations"), std::string::npos) << message;
    // An override adding a bad grid key is named as the override.
    message = error_of([&] { settings_of(kRecipe, {"tune.grid.objective.lr=[1]"}); });
    EXPECT_NE(message.find("override 'tune.grid.objective.lr=[1]'"), std::string::npos) << message;
}

TEST(TuneSettings, RefusesHugeGrids) {
    std::string yaml = "tune:\n  grid:\n    objective:\n";
    for (const auto key : kTunableKeys) {
        yaml += fmt::format("      {}: [", key.substr(key.find('.') + 1));
        for (int v = 0; v < 11; ++v) yaml += fmt::format("{}{}", v == 0 ? "" : ", ", v);
        yaml += "]\n";
    }
    const auto message = error_of([&] { settings_of(yaml); });  // 11^5 = 161051 combinations
    EXPECT_NE(message.find("spans more than 100000 combinations"), std::string::npos) << message;
}

TEST(PlanTrials, GridIsTheCartesianProductFirstAxisSlowest) {
    const auto plan = plan_trials(settings_of(kRecipe));
    const std::vector<std::vector<double>> expected = {{0.0, 0.25}, {0.0, 2.0}, {0.5, 0.25}, {0.5, 2.0}, {1.0, 0.25}, {1.0, 2.0}};
    EXPECT_EQ(plan, expected);
}

TEST(PlanTrials, RandomDrawsAreDistinctSeededAndDeterministic) {
    const std::string yaml = "tune:\n  search: random\n  trials: 5\n  seed: 11\n  grid:\n    objective:\n"
                             "      emotion: [0, 0.1, 0.2, 0.3]\n      strategy: [0, 0.1, 0.2, 0.3]\n";
    const auto first = plan_trials(settings_of(yaml));
    ASSERT_EQ(first.size(), 5u);
    EXPECT_EQ(first, plan_trials(settings_of(yaml)));
    EXPECT_EQ(std::set<std::vector<double>>(first.begin(), first.end()).size(), 5u);
    // The draws are pinned (mt19937_64 and the rejection sampling are fully specified), so a
    // change to the sampling that would silently reshuffle users' searches fails here.
    const std::vector<std::vector<double>> pinned = {{0, 0.3}, {0.2, 0.3}, {0.2, 0.1}, {0.1, 0.3}, {0.2, 0}};
    EXPECT_EQ(first, pinned);
    EXPECT_NE(first, plan_trials(settings_of(yaml, {"tune.seed=12"})));
    // All 16 draws: a permutation of the grid.
    const auto all = plan_trials(settings_of(yaml, {"tune.trials=16"}));
    EXPECT_EQ(std::set<std::vector<double>>(all.begin(), all.end()).size(), 16u);
    EXPECT_NE(all, plan_trials(settings_of(yaml, {"tune.search=grid", "tune.trials=0"})));
}

TEST(DevObjective, SumsTheFiniteTermsOfOneTrial) {
    DevMetrics m;
    EXPECT_TRUE(std::isnan(dev_objective(m)));
    m.nll = 2.5;
    EXPECT_DOUBLE_EQ(dev_objective(m), 2.5);
    m.emotion_macro_f1 = 0.25;
    m.strategy_macro_f1 = 0.5;
    m.va_mse = 0.125;
    m.safe_kl = 7.0;  // not a term: the KL measures closeness to the teacher, not quality on dev
    EXPECT_DOUBLE_EQ(dev_objective(m), 2.5 + 0.75 + 0.5 + 0.125);
}

TEST(DevObjective, AMissingTermIsChargedTheWorstValueOfTheSearch) {
    std::vector<DevMetrics> trials(3);
    trials[0].nll = 2.0;
    trials[0].emotion_macro_f1 = 0.5;
    trials[1].nll = 1.5;  // emotion head off: charged the worst emotion term, 1 - 0.25
    trials[2].nll = 3.0;
    trials[2].emotion_macro_f1 = 0.25;
    std::vector<std::string> terms;
    const auto objectives = dev_objectives(trials, &terms);
    EXPECT_EQ(terms, (std::vector<std::string>{"nll", "(1 - emotion_macro_f1)"}));
    ASSERT_EQ(objectives.size(), 3u);
    EXPECT_DOUBLE_EQ(objectives[0], 2.0 + 0.5);
    EXPECT_DOUBLE_EQ(objectives[1], 1.5 + 0.75);
    EXPECT_DOUBLE_EQ(objectives[2], 3.0 + 0.75);
}

TEST(DevMetricsJson, RoundTripsThroughToJson) {
    DevMetrics m;
    m.nll = 2.25;
    m.nll_tokens = 120;
    m.emotion_macro_f1 = 0.375;
    m.emotion_sites = 9;
    m.strategy_accuracy = 0.5;
    m.strategy_macro_f1 = 0.125;
    m.strategy_sites = 4;
    m.va_mse = 0.0625;
    m.va_mae = 0.25;
    m.va_sites = 9;
    const auto back = dev_metrics_from_json(to_json(m), "test");
    EXPECT_EQ(to_json(back), to_json(m));
    EXPECT_TRUE(std::isnan(back.safe_kl));
    const auto message = error_of([] { dev_metrics_from_json(nlohmann::json{{"nll", "x"}}, "t.jsonl line 3"); });
    EXPECT_NE(message.find("t.jsonl line 3: dev metric 'nll'"), std::string::npos) << message;
}

TEST(WithoutTuneSection, DropsOnlyTune) {
    Config config = Config::parse(without_tune_section(kRecipe, "recipe.yaml"), "stripped");
    EXPECT_FALSE(config.has("tune"));
    EXPECT_EQ(config.get<std::int64_t>("optimisation.max_steps"), 500);
    EXPECT_EQ(config.get<double>("objective.emotion"), 0.5);
}

// A fake trial: dev metrics a known function of λ. The emotion F1 peaks at λ_emo = 0.5 and NLL
// grows with λ_strat, so the best of kRecipe's grid is (0.5, 0.25): trial 2.
DevMetrics fake_metrics(const TrialSpec& spec) {
    double emotion = 0, strategy = 0;
    for (const auto& [key, value] : spec.lambdas) (key == "objective.emotion" ? emotion : strategy) = value;
    DevMetrics m;
    m.nll = 2.0 + 0.1 * strategy;
    m.emotion_macro_f1 = 0.5 - (emotion - 0.5) * (emotion - 0.5);
    return m;
}

TuneOptions options_in(const fs::path& out, const std::string& yaml = kRecipe) {
    Config config = Config::parse(yaml, "recipe.yaml");
    TuneOptions options;
    options.settings = read_tune_settings(config);
    options.recipe_yaml = config.dump();
    options.recipe_source = "recipe.yaml";
    options.out_dir = out.string();
    return options;
}

TEST(RunTune, PicksTheKnownBestAndWritesTheFiles) {
    const auto out = fresh_dir("tune_best");
    auto options = options_in(out);
    std::vector<std::size_t> progress;
    options.on_trial = [&](const TrialRecord& trial, std::size_t done, std::size_t total) {
        EXPECT_EQ(total, 6u);
        EXPECT_EQ(trial.index + 1, done);
        progress.push_back(done);
    };
    std::vector<TrialSpec> seen;
    const auto result = run_tune(options, [&](const TrialSpec& spec) {
        seen.push_back(spec);
        return fake_metrics(spec);
    });
    EXPECT_EQ(progress, (std::vector<std::size_t>{1, 2, 3, 4, 5, 6}));
    ASSERT_EQ(result.trials.size(), 6u);
    EXPECT_EQ(result.best, 2u);
    EXPECT_EQ(result.trials[2].name, "trial-002");
    EXPECT_DOUBLE_EQ(result.trials[2].objective, 2.025 + 0.5);
    EXPECT_EQ(result.terms, (std::vector<std::string>{"nll", "(1 - emotion_macro_f1)"}));

    // Each trial is the base recipe without `tune`, plus its λ, the short step count, its name and folder.
    ASSERT_EQ(seen.size(), 6u);
    EXPECT_EQ(seen[3].run_dir, (out / "trial-003").string());
    Config trial = seen[3].config();
    EXPECT_FALSE(trial.has("tune"));
    EXPECT_EQ(trial.get<double>("objective.emotion"), 0.5);
    EXPECT_EQ(trial.get<double>("objective.strategy"), 2.0);
    EXPECT_EQ(trial.get<std::int64_t>("optimisation.max_steps"), 7);
    EXPECT_EQ(trial.get<std::string>("name"), "trial-003");
    EXPECT_EQ(trial.get<std::string>("output.dir"), out.string());

    // best.yaml: a plain recipe with the chosen λ and the base's own step count.
    Config best = Config::load((out / "best.yaml").string());
    EXPECT_FALSE(best.has("tune"));
    EXPECT_EQ(best.get<double>("objective.emotion"), 0.5);
    EXPECT_EQ(best.get<double>("objective.strategy"), 0.25);
    EXPECT_EQ(best.get<std::int64_t>("optimisation.max_steps"), 500);
    EXPECT_EQ(best.get<std::string>("name"), "base");

    const auto log = read_metrics_log((out / "trials.jsonl").string());
    ASSERT_EQ(log.records.size(), 6u);
    EXPECT_EQ(log.records[2]["name"], "trial-002");
    EXPECT_EQ(log.records[2]["status"], "ok");
    EXPECT_EQ(log.records[2]["lambda"]["objective.emotion"], 0.5);
    EXPECT_EQ(log.records[2]["steps"], 7);
    EXPECT_DOUBLE_EQ(log.records[2]["dev"]["nll"].get<double>(), 2.025);
    EXPECT_DOUBLE_EQ(log.records[2]["objective"].get<double>(), 2.525);

    // trials.md: sorted by J, the chosen row first and marked; only metric columns some trial has.
    const auto table = read_text(out / "trials.md");
    EXPECT_EQ(table, trials_table(result));
    const auto chosen = table.find("| **chosen** | trial-002 | 0.5 | 0.25 | 2.0250 | 0.5000 | 2.5250 |");
    EXPECT_NE(chosen, std::string::npos) << table;
    EXPECT_LT(chosen, table.find("trial-000")) << table;
    EXPECT_EQ(table.find("VA MSE"), std::string::npos) << table;
    EXPECT_NE(table.find("J = nll + (1 - emotion_macro_f1)"), std::string::npos) << table;
}

TEST(RunTune, TiesGoToTheEarlierTrial) {
    const auto out = fresh_dir("tune_ties");
    const auto result = run_tune(options_in(out), [](const TrialSpec&) {
        DevMetrics m;
        m.nll = 1.0;
        return m;
    });
    EXPECT_EQ(result.best, 0u);
}

TEST(RunTune, FailedTrialsAreRecordedAndTheSearchGoesOn) {
    const auto out = fresh_dir("tune_failed");
    const auto result = run_tune(options_in(out), [](const TrialSpec& spec) {
        if (spec.lambdas[0].second == 0.5) fail("trial {} diverged | at step 3", spec.name);
        return fake_metrics(spec);
    });
    EXPECT_TRUE(result.trials[2].failed());
    EXPECT_EQ(result.trials[2].error, "trial trial-002 diverged | at step 3");
    EXPECT_TRUE(std::isnan(result.trials[2].objective));
    EXPECT_EQ(result.best, 0u);  // (0, 0.25): J = 2.025 + 0.75 ties (1, 0.25); the earlier wins
    const auto log = read_metrics_log((out / "trials.jsonl").string());
    ASSERT_EQ(log.records.size(), 6u);
    EXPECT_EQ(log.records[2]["status"], "failed");
    EXPECT_EQ(log.records[2]["error"], "trial trial-002 diverged | at step 3");
    const auto table = read_text(out / "trials.md");
    EXPECT_NE(table.find("| trial-002 | 0.5 | 0.25 | – | – | failed |"), std::string::npos) << table;
    EXPECT_NE(table.find("trial-002 failed: trial trial-002 diverged \\| at step 3"), std::string::npos) << table;

    const auto message = error_of([&] {
        run_tune(options_in(fresh_dir("tune_all_failed")), [](const TrialSpec&) -> DevMetrics { fail("no memory"); });
    });
    EXPECT_NE(message.find("all 6 trials failed"), std::string::npos) << message;
    EXPECT_NE(message.find("trial-000: no memory"), std::string::npos) << message;

    const auto no_dev = error_of([&] { run_tune(options_in(fresh_dir("tune_no_dev")), [](const TrialSpec&) { return DevMetrics{}; }); });
    EXPECT_NE(no_dev.find("does the recipe set data.dev_path"), std::string::npos) << no_dev;
}

TEST(RunTune, ResumeRunsOnlyWhatIsMissingAndStartsTrialsClean) {
    const auto out = fresh_dir("tune_resume");
    fs::create_directories(out / "trial-001");
    std::ofstream(out / "trial-001" / "stale") << "from an earlier run";
    int calls = 0;
    const auto first = run_tune(options_in(out), [&](const TrialSpec& spec) {
        ++calls;
        EXPECT_FALSE(fs::exists(spec.run_dir)) << "a trial starts from an empty folder";
        if (spec.index == 4) fail("interrupted");
        return fake_metrics(spec);
    });
    EXPECT_EQ(calls, 6);
    EXPECT_TRUE(first.trials[4].failed());

    std::vector<std::size_t> ran;
    const auto second = run_tune(options_in(out), [&](const TrialSpec& spec) {
        ran.push_back(spec.index);
        return fake_metrics(spec);
    });
    EXPECT_EQ(ran, (std::vector<std::size_t>{4}));
    EXPECT_TRUE(second.trials[0].reused);
    EXPECT_FALSE(second.trials[4].reused);
    EXPECT_EQ(second.best, 2u);
    EXPECT_DOUBLE_EQ(second.trials[2].objective, 2.525);
    const auto log = read_metrics_log((out / "trials.jsonl").string());
    ASSERT_EQ(log.records.size(), 6u);  // the failed record was dropped, the rerun appended
    EXPECT_EQ(log.records[5]["name"], "trial-004");
    EXPECT_EQ(log.records[5]["status"], "ok");

    // Other settings (here the step count) plan different trials: nothing is reused.
    ran.clear();
    run_tune(options_in(out, std::string(kRecipe) + "  search: grid\n"), [&](const TrialSpec& spec) {
        ran.push_back(spec.index);
        return fake_metrics(spec);
    });
    EXPECT_TRUE(ran.empty()) << "search: grid is the default, so the plan is unchanged";
    auto shorter = options_in(out);
    shorter.settings.steps = 3;
    run_tune(shorter, [&](const TrialSpec& spec) {
        ran.push_back(spec.index);
        return fake_metrics(spec);
    });
    EXPECT_EQ(ran.size(), 6u);
}

}  // namespace
}  // namespace kindred::train
