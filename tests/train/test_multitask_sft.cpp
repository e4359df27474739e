// Multi-objective SFT (train/sft.h with heads and the safety KL) on the random tiny Llama: the NLL
// and every head's loss fall in a joint run, and the KL with the heads when the NLL does not pull
// against it; each ablation switch removes its term (null in metrics.jsonl, head absent from
// the adapter folder and the checkpoints); an inactive KL never builds or runs the teacher; sites
// without a label contribute nothing; a stopped and resumed multi-task run equals the straight one
// bit for bit; dev metrics are logged and returned.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/metrics_log.h"
#include "formats/peft_adapter.h"
#include "model/heads.h"
#include "train/checkpoint.h"
#include "train/recipe.h"
#include "train/safety_teacher.h"
#include "train/sft.h"
#include "tiny_sft_model.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::options_for;
using testing::tiny;
using testing::tiny_recipe;

// The rules "system prompt" the synthetic teacher reads before the conversation.
constexpr std::int32_t kRules[] = {1, 2, 1};

// Synthetic multi-task conversations. Class c = e % 4 is written into the prompt (tokens 80 + c at
// positions 0 and 2), so every head can learn it from the site's hidden state: emotion label c (two
// labels {c, c+1} on every fifth example, as GoEmotions' multi-label rows), strategy c % 3 on
// "ESConv-like" examples only, valence/arousal a function of c on all but every third. The site is
// position 3 (the last token before the reply, as the dataset places it). Every sixth example is
// emotion-only: its 4 prompt tokens and the site, no LM target. With a teacher, teacher_tokens are
// kRules followed by the conversation, so the teacher's positions are the student's + 3.
std::vector<TokenizedExample> multitask_examples(int count, bool with_teacher) {
    std::vector<TokenizedExample> examples;
    for (int e = 0; e < count; ++e) {
        const int c = e % 4;
        const bool emotion_only = e % 6 == 5;
        TokenizedExample example;
        example.tokens = {80 + c, 10 + e % 7, 80 + c, 5};
        const int reply = emotion_only ? 0 : 6 + e % 5;
        for (int t = 0; t < reply; ++t) example.tokens.push_back(20 + (c * 7 + t * (1 + c)) % 50);
        example.targets.assign(example.tokens.size(), kIgnoreTarget);
        for (std::size_t t = 3; t + 1 < example.tokens.size(); ++t) {
            example.targets[t] = example.tokens[t + 1];
            ++example.target_count;
        }
        HeadSite site;
        site.position = 3;
        site.emotions = {c};
        if (e % 5 == 4) site.emotions.push_back(c + 1);
        if (!emotion_only && e % 2 == 0) site.strategy = c % 3;
        if (e % 3 != 2) {
            site.has_va = true;
            site.valence = 0.5f * static_cast<float>(c) - 0.75f;
            site.arousal = 0.25f * static_cast<float>(c % 2);
        }
        example.sites.push_back(site);
        example.source = emotion_only ? "goemotions" : "empathetic_dialogues";
        example.multi_label = emotion_only;
        example.line = static_cast<std::size_t>(e + 1);
        if (with_teacher) {
            example.teacher_tokens.assign(std::begin(kRules), std::end(kRules));
            example.teacher_tokens.insert(example.teacher_tokens.end(), example.tokens.begin(), example.tokens.end());
            for (std::size_t t = 0; t < example.targets.size(); ++t)
                if (example.targets[t] != kIgnoreTarget)
                    example.teacher_positions.push_back(static_cast<std::int32_t>(t + std::size(kRules)));
        }
        examples.push_back(std::move(example));
    }
    return examples;
}

SftRecipe multitask_recipe() {
    SftRecipe recipe = tiny_recipe();
    recipe.adapter.seed = 11;
    recipe.seed = 11;
    recipe.grad_accumulation = 2;
    recipe.checkpoint_every = 10;
    recipe.keep_last = 1;
    recipe.objective = {1.0, 1.0, 1.0, 1.0, 1.0};
    recipe.safety.temperature = 2.0;
    recipe.safety.top_k = 8;
    recipe.resolved_yaml = "test: multitask\n";
    return recipe;
}

// Mean of a component over steps [begin, end) where it was computed.
double mean_of(const SftResult& result, double StepLosses::*member, std::size_t begin, std::size_t end) {
    double sum = 0.0;
    int n = 0;
    for (std::size_t i = begin; i < end; ++i) {
        const double value = result.components[i].*member;
        if (std::isfinite(value)) {
            sum += value;
            ++n;
        }
    }
    return n > 0 ? sum / n : std::nan("");
}

constexpr std::pair<const char*, double StepLosses::*> kTerms[] = {
    {"lm", &StepLosses::lm},           {"emotion", &StepLosses::emotion}, {"strategy", &StepLosses::strategy},
    {"va", &StepLosses::valence_arousal}, {"safety", &StepLosses::safety}, {"total", &StepLosses::total}};

// The mean of the last 6 of 30 steps must be under 0.8 x the first 6's.
void expect_falls(const SftResult& result, const char* name, double StepLosses::*member) {
    ASSERT_EQ(result.components.size(), 30u);
    const double first = mean_of(result, member, 0, 6);
    const double last = mean_of(result, member, 24, 30);
    ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << name;
    EXPECT_LT(last, 0.8 * first) << name << ": first " << first << " last " << last;
}

TEST(MultitaskSft, EveryEnabledLossFalls) {
    const auto examples = multitask_examples(48, true);
    const auto dev = multitask_examples(12, true);
    const auto dir = fresh_dir("multitask_falls");
    auto options = options_for(dir);
    options.dev = dev;
    auto recipe = multitask_recipe();
    recipe.evaluation.every = 10;
    const auto result = run_sft(recipe, tiny(), examples, options);
    ASSERT_TRUE(result.finished);
    // Each head's class is written in the prompt and the replies are deterministic per class, so 30
    // steps at lr 1e-2 must cut every head's term and the NLL well down.
    for (const auto& [name, member] : kTerms) {
        if (std::string(name) == "safety") continue;  // below
        expect_falls(result, name, member);
    }
    // The KL is not expected to fall beside a full-weight NLL here: the NLL pulls the student towards
    // the deterministic replies, away from the random teacher's flat distribution (measured: KL
    // 0.085 -> 0.146 at λ_safe = 5; 0.082 -> 0.073 at λ_safe = 20). Without the NLL, and with the
    // heads at 0.1 so that their larger gradients do not swamp the KL's after clipping, the student
    // must learn to imitate the rules-prompted teacher (measured 0.084 -> 0.054) while every head
    // still learns.
    {
        auto kl_recipe = multitask_recipe();
        kl_recipe.objective = {0.0, 0.1, 0.1, 0.1, 1.0};
        const auto kl_dir = fresh_dir("multitask_kl");
        const auto kl_run = run_sft(kl_recipe, tiny(), examples, options_for(kl_dir));
        for (const auto& [name, member] : kTerms)
            if (std::string(name) != "lm") expect_falls(kl_run, name, member);
        for (const auto& step : kl_run.components) EXPECT_TRUE(std::isnan(step.lm));
        fs::remove_all(kl_dir);
    }
    EXPECT_GT(result.teacher_cached_bytes, 0u);

    // metrics.jsonl: every component per step, dev records every 10 steps, and the final dev metrics.
    const auto records = read_metrics_log((dir / "metrics.jsonl").string()).records;
    std::size_t steps = 0, devs = 0;
    for (const auto& record : records) {
        if (record.contains("dev")) {
            ++devs;
            EXPECT_EQ(record["step"].get<int>() % 10, 0);
            continue;
        }
        ++steps;
        for (const char* key : {"loss", "loss_lm", "loss_emotion", "loss_strategy", "loss_va", "loss_safety",
                                "emotion_sites", "strategy_sites", "va_sites"})
            EXPECT_TRUE(record.contains(key)) << key;
    }
    EXPECT_EQ(steps, 30u);
    EXPECT_EQ(devs, 3u);
    ASSERT_TRUE(result.final_dev.has_value());
    EXPECT_TRUE(std::isfinite(result.final_dev->nll));
    EXPECT_TRUE(std::isfinite(result.final_dev->emotion_macro_f1));
    EXPECT_TRUE(std::isfinite(result.final_dev->strategy_accuracy));
    EXPECT_TRUE(std::isfinite(result.final_dev->va_mse));
    EXPECT_TRUE(std::isfinite(result.final_dev->safe_kl));
    for (const char* file : {"loss.svg", "loss_components.svg", "lr.svg", "dev.svg", "adapter/heads.safetensors",
                             "adapter/heads.json", "adapter/adapter_model.safetensors"})
        EXPECT_TRUE(fs::exists(dir / file)) << file;
    const auto heads = model::read_heads_with_labels((dir / "adapter").string(), 64);
    EXPECT_TRUE(heads.heads.enabled(model::Head::Emotion));
    EXPECT_TRUE(heads.heads.enabled(model::Head::Strategy));
    EXPECT_TRUE(heads.heads.enabled(model::Head::ValenceArousal));
    EXPECT_EQ(heads.emotion_labels.size(), 27u);
    EXPECT_EQ(heads.strategy_labels.size(), 8u);
    fs::remove_all(dir);
}

// Each switch removes its term: null in every metrics record, no head tensors in the adapter
// folder or the checkpoint, and the other terms still run.
TEST(MultitaskSft, AblationSwitchesRemoveTheirTerm) {
    const auto examples = multitask_examples(24, true);
    struct Case {
        const char* name;
        void (*apply)(SftRecipe&);
        const char* metric;
        const char* tensor;  // absent from the adapter folder and checkpoints; null: the KL
    };
    const Case cases[] = {
        {"emotion", [](SftRecipe& r) { r.heads.emotion = false; r.objective.emotion = 0.0; }, "loss_emotion",
         "heads.emotion.weight"},
        {"strategy", [](SftRecipe& r) { r.heads.strategy = false; r.objective.strategy = 0.0; }, "loss_strategy",
         "heads.strategy.weight"},
        {"va", [](SftRecipe& r) { r.heads.valence_arousal = false; r.objective.valence_arousal = 0.0; }, "loss_va",
         "heads.valence_arousal.weight"},
        {"safety", [](SftRecipe& r) { r.safety.enabled = false; r.objective.safety_kl = 0.0; }, "loss_safety", nullptr},
    };
    for (const auto& c : cases) {
        auto recipe = multitask_recipe();
        recipe.max_steps = 4;
        c.apply(recipe);
        const auto dir = fresh_dir(std::string("ablation_") + c.name);
        const auto result = run_sft(recipe, tiny(), examples, options_for(dir));
        ASSERT_TRUE(result.finished) << c.name;
        for (const auto& record : read_metrics_log((dir / "metrics.jsonl").string()).records) {
            EXPECT_TRUE(record[c.metric].is_null()) << c.name;
            EXPECT_TRUE(record["loss_lm"].is_number()) << c.name;
        }
        const auto checkpoint = load_latest_checkpoint((dir / "checkpoints").string());
        std::vector<std::string> stored;
        for (const auto& tensor : checkpoint.state.adapter) stored.push_back(tensor.name);
        const auto heads = model::read_heads_with_labels((dir / "adapter").string(), 64);
        if (c.tensor != nullptr) {
            EXPECT_EQ(std::count(stored.begin(), stored.end(), c.tensor), 0) << c.name;
            const model::Head head = std::string(c.name) == "emotion"    ? model::Head::Emotion
                                     : std::string(c.name) == "strategy" ? model::Head::Strategy
                                                                         : model::Head::ValenceArousal;
            EXPECT_FALSE(heads.heads.enabled(head)) << c.name;
        } else {
            EXPECT_EQ(result.teacher_cached_bytes, 0u);
        }
        // The other heads are still there.
        EXPECT_EQ(std::count(stored.begin(), stored.end(), "heads.emotion.weight"), std::string(c.name) == "emotion" ? 0 : 1);
        fs::remove_all(dir);
    }

    // Every head off and no KL: a plain run, with no heads files at all.
    auto recipe = multitask_recipe();
    recipe.max_steps = 2;
    recipe.objective = {1.0, 0.0, 0.0, 0.0, 0.0};
    const auto dir = fresh_dir("ablation_all");
    run_sft(recipe, tiny(), multitask_examples(24, false), options_for(dir));
    EXPECT_TRUE(fs::exists(dir / "adapter" / "adapter_model.safetensors"));
    EXPECT_FALSE(fs::exists(dir / "adapter" / "heads.safetensors"));
    EXPECT_FALSE(fs::exists(dir / "adapter" / "heads.json"));
    fs::remove_all(dir);
}

// heads.lr_multiplier scales the heads' steps only: at 0 the heads keep their initial weights
// however long the run, while the adapters still learn (from every term, the heads' included).
TEST(MultitaskSft, HeadLearningRateMultiplierScalesOnlyTheHeads) {
    const auto examples = multitask_examples(24, false);
    struct Run {
        std::vector<float> heads, adapter;
    };
    auto run = [&](double multiplier, std::int64_t steps) {
        auto recipe = multitask_recipe();
        recipe.objective.safety_kl = 0.0;
        recipe.heads.lr_multiplier = multiplier;
        recipe.max_steps = steps;
        const auto dir = fresh_dir("head_lr");
        run_sft(recipe, tiny(), examples, options_for(dir));
        const auto loaded = model::read_heads_with_labels((dir / "adapter").string(), 64);
        const auto checkpoint = load_latest_checkpoint((dir / "checkpoints").string());
        Run r{{loaded.heads.params().begin(), loaded.heads.params().end()}, {}};
        for (const auto& tensor : checkpoint.state.adapter)
            if (tensor.name.rfind("heads.", 0) != 0) r.adapter.insert(r.adapter.end(), tensor.values.begin(), tensor.values.end());
        fs::remove_all(dir);
        return r;
    };
    const Run frozen_short = run(0.0, 2), frozen_long = run(0.0, 4), moving = run(1.0, 2);
    EXPECT_EQ(frozen_short.heads, frozen_long.heads);
    EXPECT_NE(frozen_short.adapter, frozen_long.adapter);
    EXPECT_NE(frozen_short.heads, moving.heads);
}

// Examples without teacher tokens make any teacher run throw; with the KL inactive (λ_safe = 0, or
// safety.enabled off) the run must go through, so the teacher was neither built nor asked.
TEST(MultitaskSft, InactiveKlNeverRunsTheTeacher) {
    const auto examples = multitask_examples(24, false);
    auto recipe = multitask_recipe();
    recipe.max_steps = 3;
    recipe.objective.safety_kl = 0.0;
    const auto zero_dir = fresh_dir("kl_zero");
    const auto zero = run_sft(recipe, tiny(), examples, options_for(zero_dir));
    EXPECT_TRUE(zero.finished);
    EXPECT_EQ(zero.teacher_cached_bytes, 0u);
    for (const auto& step : zero.components) EXPECT_TRUE(std::isnan(step.safety));
    fs::remove_all(zero_dir);

    recipe.objective.safety_kl = 1.0;
    const auto active_dir = fresh_dir("kl_active");
    EXPECT_THROW(run_sft(recipe, tiny(), examples, options_for(active_dir)), Error);  // the control
    fs::remove_all(active_dir);

    // A top_k over the vocabulary (96) is refused naming the key, before anything runs.
    recipe.safety.top_k = 97;
    const auto topk_dir = fresh_dir("kl_topk");
    try {
        run_sft(recipe, tiny(), multitask_examples(24, true), options_for(topk_dir));
        ADD_FAILURE() << "expected an Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("safety.top_k"), std::string::npos) << error.what();
    }
    fs::remove_all(topk_dir);
}

// A site without an emotion label contributes nothing to the emotion term: in one step holding a
// labelled example X and an example Y whose site has no emotion label, changing everything about Y
// (its tokens, its other labels) leaves the step's emotion loss and the emotion head's update
// bitwise unchanged (segment-masked attention and row-wise products make X's hidden states
// independent of Y's values), and the step's emotion count is X's sites only.
// A dev teacher lent by the caller (which has already served this dev set) gives the dev metrics
// run_sft's own teacher gives, without computing anything new; one with other settings is refused.
TEST(MultitaskSft, LentDevTeacherIsReused) {
    const auto examples = multitask_examples(24, true);
    const auto dev = multitask_examples(6, true);
    auto recipe = multitask_recipe();
    recipe.max_steps = 2;

    auto options = options_for(fresh_dir("dev_own"));
    options.dev = dev;
    const auto own = run_sft(recipe, tiny(), examples, options);
    ASSERT_TRUE(own.final_dev.has_value());

    // The first run fills the lent teacher (proving it is the one used), the second only reads it.
    SafetyTeacher lent(tiny(), static_cast<float>(recipe.safety.temperature), recipe.safety.top_k);
    options.dev_teacher = &lent;
    options.run_dir = fresh_dir("dev_lent").string();
    const auto filled = run_sft(recipe, tiny(), examples, options);
    ASSERT_TRUE(filled.final_dev.has_value());
    EXPECT_EQ(to_json(*filled.final_dev), to_json(*own.final_dev));  // same distributions, same order
    EXPECT_GT(lent.cached_examples(), 0u);  // (examples without reply tokens never ask the teacher)
    const std::size_t cached = lent.cached_bytes();
    options.run_dir = fresh_dir("dev_lent").string();
    const auto reused = run_sft(recipe, tiny(), examples, options);
    ASSERT_TRUE(reused.final_dev.has_value());
    EXPECT_EQ(to_json(*reused.final_dev), to_json(*own.final_dev));
    EXPECT_EQ(lent.cached_bytes(), cached);

    SafetyTeacher other(tiny(), static_cast<float>(recipe.safety.temperature), recipe.safety.top_k + 1);
    options.run_dir = fresh_dir("dev_other").string();
    options.dev_teacher = &other;
    try {
        run_sft(recipe, tiny(), examples, options);
        ADD_FAILURE() << "a dev teacher with another top_k was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("top_k"), std::string::npos) << error.what();
    }
    for (const char* name : {"dev_own", "dev_lent", "dev_other"}) fs::remove_all(fresh_dir(name));
}

TEST(MultitaskSft, UnlabelledSitesContributeNothing) {
    auto recipe = multitask_recipe();
    recipe.max_steps = 1;
    recipe.grad_accumulation = 1;
    recipe.max_grad_norm = 0.0;  // clipping would couple the head's update to Y's trunk gradients
    recipe.objective = {1.0, 1.0, 1.0, 1.0, 0.0};
    recipe.checkpoint_every = 1;
    recipe.max_seq_len = 21;  // exactly X (10 tokens) and Y (11): the row holds each once
    const auto make = [](int y_variant) {
        auto examples = multitask_examples(2, false);  // X = example 0, Y = example 1: both fit one 48-token row
        auto& y = examples[1];
        y.sites[0].emotions.clear();
        if (y_variant == 1) {
            for (std::size_t t = 0; t < y.tokens.size(); ++t) y.tokens[t] = 30 + static_cast<std::int32_t>(t);
            for (std::size_t t = 3; t + 1 < y.tokens.size(); ++t) y.targets[t] = y.tokens[t + 1];
            y.sites[0].strategy = 2;
            y.sites[0].valence = -0.9f;
        }
        return examples;
    };
    std::vector<std::vector<float>> emotion_heads;
    std::vector<double> emotion_losses, lm_losses;
    for (int variant = 0; variant < 2; ++variant) {
        const auto examples = make(variant);
        const auto dir = fresh_dir("unlabelled_" + std::to_string(variant));
        const auto result = run_sft(recipe, tiny(), examples, options_for(dir));
        emotion_losses.push_back(result.components[0].emotion);
        lm_losses.push_back(result.components[0].lm);
        const auto records = read_metrics_log((dir / "metrics.jsonl").string()).records;
        EXPECT_EQ(records[0]["emotion_sites"], 1);
        EXPECT_EQ(records[0]["va_sites"], 2);
        const auto checkpoint = load_latest_checkpoint((dir / "checkpoints").string());
        for (const auto& tensor : checkpoint.state.adapter)
            if (tensor.name.starts_with("heads.emotion.")) emotion_heads.push_back(tensor.values);
        fs::remove_all(dir);
    }
    ASSERT_EQ(emotion_heads.size(), 4u);
    EXPECT_TRUE(std::isfinite(emotion_losses[0]));
    EXPECT_NE(lm_losses[0], lm_losses[1]);  // Y did change, and it is in the step
    EXPECT_EQ(emotion_losses[0], emotion_losses[1]);
    EXPECT_EQ(emotion_heads[0], emotion_heads[2]);  // weight
    EXPECT_EQ(emotion_heads[1], emotion_heads[3]);  // bias
}

// Straight N steps versus stop after 6 (checkpoint at 4) and resume: every component of every step,
// the heads and the adapter must be identical, with dropout, accumulation, every head and the KL on
// (the teacher's cache is rebuilt after the resume: the frozen base gives the same values).
TEST(MultitaskSft, ResumeReproducesTheUninterruptedRunBitwise) {
    const auto examples = multitask_examples(24, true);
    auto recipe = multitask_recipe();
    recipe.max_steps = 10;
    recipe.checkpoint_every = 4;
    recipe.keep_last = 2;
    recipe.adapter.dropout = 0.1;
    recipe.micro_batch = 2;

    const auto straight_dir = fresh_dir("mt_straight");
    const auto straight = run_sft(recipe, tiny(), examples, options_for(straight_dir));
    const auto resumed_dir = fresh_dir("mt_resumed");
    auto options = options_for(resumed_dir);
    options.on_step = [](std::int64_t step, double) { return step < 6; };
    const auto first = run_sft(recipe, tiny(), examples, options);
    ASSERT_EQ(first.last_step, 6);
    options.on_step = nullptr;
    options.resume = true;
    const auto second = run_sft(recipe, tiny(), examples, options);
    EXPECT_EQ(second.first_step, 4);
    ASSERT_TRUE(second.finished);
    ASSERT_EQ(second.components.size(), 6u);
    const auto same = [](const StepLosses& a, const StepLosses& b) {
        const auto eq = [](double x, double y) { return (std::isnan(x) && std::isnan(y)) || x == y; };
        return eq(a.total, b.total) && eq(a.lm, b.lm) && eq(a.emotion, b.emotion) && eq(a.strategy, b.strategy) &&
               eq(a.valence_arousal, b.valence_arousal) && eq(a.safety, b.safety);
    };
    for (std::size_t i = 0; i < 6; ++i) EXPECT_TRUE(same(first.components[i], straight.components[i])) << "step " << i + 1;
    for (std::size_t i = 0; i < 6; ++i)
        EXPECT_TRUE(same(second.components[i], straight.components[i + 4])) << "step " << i + 5;

    const auto heads_a = model::read_heads((straight_dir / "adapter").string(), 64);
    const auto heads_b = model::read_heads((resumed_dir / "adapter").string(), 64);
    EXPECT_TRUE(std::equal(heads_a.params().begin(), heads_a.params().end(), heads_b.params().begin(),
                           heads_b.params().end()));
    const auto adapter_a = peft::read_adapter((straight_dir / "adapter").string());
    const auto adapter_b = peft::read_adapter((resumed_dir / "adapter").string());
    ASSERT_EQ(adapter_a.tensors.size(), adapter_b.tensors.size());
    for (std::size_t i = 0; i < adapter_a.tensors.size(); ++i)
        EXPECT_EQ(adapter_a.tensors[i].values, adapter_b.tensors[i].values) << adapter_a.tensors[i].name;
    const auto a = read_metrics_log((straight_dir / "metrics.jsonl").string()).records;
    const auto b = read_metrics_log((resumed_dir / "metrics.jsonl").string()).records;
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        for (const char* key : {"step", "loss", "loss_emotion", "loss_safety", "grad_norm"})
            EXPECT_EQ(b[i][key], a[i][key]) << "record " << i << " " << key;
    fs::remove_all(straight_dir);
    fs::remove_all(resumed_dir);
}

}  // namespace
}  // namespace kindred::train
