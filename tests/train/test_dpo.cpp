// Tests for train/dpo.h on the random tiny Llama of tests/goldens/inference (2 layers, vocab 96):
// policy = reference gives log 2 and zero margin; training raises the reward accuracy; the
// reference log-probs are computed once and then read from their cache (counted); accumulation
// equals one large batch; and a run killed with SIGKILL mid-way and resumed writes the adapter the
// uninterrupted run writes, bit for bit.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/metrics_log.h"
#include "formats/peft_adapter.h"
#include "test_paths.h"
#include "tiny_sft_model.h"
#include "train/dpo.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

using testing::fresh_dir;
using testing::tiny;

std::string tiny_model_file() { return kindred::testing::source_path("tests/goldens/inference/tiny-llama/model.safetensors"); }

// Pairs of token ids: a 4-token prompt, a chosen reply counting up by the pair's stride and a
// rejected one counting down; learnable, so DPO can separate them quickly.
PairDataset synthetic_pairs(const fs::path& dir, int count = 12) {
    PairDataset dataset;
    fs::create_directories(dir);
    dataset.path = (dir / "pairs.jsonl").string();
    std::ofstream(dataset.path) << "synthetic\n";  // the reference cache sits beside it
    for (int p = 0; p < count; ++p) {
        std::vector<std::int32_t> prompt;
        for (int t = 0; t < 4; ++t) prompt.push_back(3 + (p * 7 + t * 5) % 90);
        const auto completion = [&](int direction, int length) {
            std::vector<std::int32_t> ids;
            for (int t = 0; t < length; ++t) ids.push_back(3 + ((p * 11 + direction * t * (1 + p % 3)) % 90 + 90) % 90);
            return ids;
        };
        PairInfo info;
        dataset.examples.push_back(tokenized_pair(prompt, completion(+1, 6 + p % 4), completion(-1, 5 + p % 3),
                                                  static_cast<std::size_t>(p + 1), info));
        dataset.pairs.push_back(info);
    }
    return dataset;
}

// A PEFT adapter for the tiny model with non-zero A and B (values from a fixed formula), standing
// in for the SFT adapter: the frozen reference and the policy's start.
std::string write_reference(const fs::path& dir, double b_scale = 0.05) {
    model::LoraConfig lora;
    lora.rank = 4;
    lora.alpha = 8;
    model::LoraAdapters adapters(tiny().config(), lora, tiny().weights().qk_interleaved);
    auto params = adapters.params();
    for (const auto& info : adapters.tensors()) {
        const double scale = info.is_b ? b_scale : 0.2;
        for (std::int64_t i = 0; i < info.rows * info.cols; ++i)
            params[static_cast<std::size_t>(info.offset + i)] =
                static_cast<float>(scale * (static_cast<double>((i * 7919 + info.offset * 13 + 5) % 2001) / 1000.0 - 1.0));
    }
    const auto path = (dir / "reference").string();
    peft::write_adapter(path, peft_adapter(adapters, "tiny-llama"));
    return path;
}

DpoRecipe tiny_dpo_recipe(const std::string& reference) {
    DpoRecipe recipe;
    recipe.reference = reference;
    recipe.run = testing::tiny_recipe();
    recipe.run.max_seq_len = 48;
    recipe.run.lr = 2e-2;
    recipe.run.warmup_steps = 0;
    recipe.run.max_steps = 12;
    recipe.run.max_grad_norm = 0.0;
    recipe.run.checkpoint_every = 3;
    recipe.run.objective.lm = 0.0;
    recipe.loss.beta = 0.5;
    return recipe;
}

DpoOptions options_in(const fs::path& dir, const std::string& name) {
    DpoOptions options;
    options.run.run_dir = (dir / name).string();
    options.run.base_model = "tiny-llama";
    options.model_path = tiny_model_file();
    return options;
}

std::vector<std::vector<float>> adapter_values(const fs::path& run) {
    std::vector<std::vector<float>> out;
    for (const auto& tensor : peft::read_adapter((run / "adapter").string()).tensors) out.push_back(tensor.values);
    return out;
}

// Exact at the level of the loss functions: the same log-probs on both sides give Δ = 0.
TEST(Dpo, PolicyEqualToReferenceGivesLogTwoAndZeroMargin) {
    const auto dir = fresh_dir("dpo_log2");
    const auto pairs = synthetic_pairs(dir);
    const auto reference = write_reference(dir);
    const DpoRecipe recipe = tiny_dpo_recipe(reference);
    model::LoraAdapters adapters(tiny().config(), reference_lora(peft::read_adapter(reference), recipe.run, tiny().config(),
                                                                reference + "/adapter_config.json"),
                                 tiny().weights().qk_interleaved);
    for (const auto& tensor : peft::read_adapter(reference).tensors) adapters.set_hf(tensor.name, tensor.values);
    model::TrainableDecoder trainer(tiny(), adapters, false, 48, kernels::Precision::F32);
    const auto logps = score_pairs(trainer, pairs, 48);
    const auto metrics = dev_pair_metrics(logps, logps, pairs, recipe.loss);
    EXPECT_DOUBLE_EQ(metrics.batch.loss, std::log(2.0));
    EXPECT_EQ(metrics.batch.rewards_margins, 0.0);
    EXPECT_EQ(metrics.batch.rewards_accuracies, 0.0);

    // The first training step: the policy starts as the reference, computed in a differently packed
    // row (training rows are shuffled and padded), so the sums agree to fp32 summation order only:
    // |Δ| ≲ 1e-5 nats here, |margin| = β|Δ| ≲ 1e-5, |loss − log 2| = β|Δ|/2 ≲ 1e-5.
    DpoRecipe one_step = recipe;
    one_step.run.max_steps = 1;
    const auto result = run_dpo(one_step, tiny(), pairs, options_in(dir, "first"));
    ASSERT_EQ(result.steps.size(), 1u);
    EXPECT_NEAR(result.steps[0].metrics.loss, std::log(2.0), 1e-5);
    EXPECT_NEAR(result.steps[0].metrics.rewards_margins, 0.0, 1e-5);
    EXPECT_NEAR(result.steps[0].metrics.rewards_chosen, 0.0, 1e-5);
    fs::remove_all(dir);
}

TEST(Dpo, TrainingSeparatesChosenFromRejectedAndWritesTheRun) {
    const auto dir = fresh_dir("dpo_train");
    const auto pairs = synthetic_pairs(dir);
    const auto dev = synthetic_pairs(dir / "dev", 6);
    DpoRecipe recipe = tiny_dpo_recipe(write_reference(dir));
    recipe.run.max_steps = 20;
    auto options = options_in(dir, "run");
    options.dev = &dev;
    const auto result = run_dpo(recipe, tiny(), pairs, options);
    ASSERT_EQ(result.steps.size(), 20u);
    EXPECT_TRUE(result.finished);
    double first = 0.0, last = 0.0;
    for (int i = 0; i < 4; ++i) {
        first += result.steps[static_cast<std::size_t>(i)].loss / 4.0;
        last += result.steps[static_cast<std::size_t>(16 + i)].loss / 4.0;
    }
    EXPECT_LT(last, 0.5 * first) << first << " -> " << last;
    EXPECT_GT(result.steps.back().metrics.rewards_accuracies, 0.9);
    EXPECT_GT(result.steps.back().metrics.rewards_margins, 0.5);
    ASSERT_TRUE(result.final_dev.has_value());
    EXPECT_EQ(result.final_dev->batch.pairs, 6u);

    const auto run = dir / "run";
    for (const char* file : {"config.yaml", "metrics.jsonl", "loss.svg", "rewards.svg", "accuracy.svg", "logps.svg",
                             "lr.svg", "dev.svg", "adapter/adapter_model.safetensors", "checkpoints/latest"})
        EXPECT_TRUE(fs::exists(run / file)) << file;
    const auto records = read_metrics_log((run / "metrics.jsonl").string()).records;
    ASSERT_GE(records.size(), 21u);
    for (const char* key : {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                            "logps/chosen", "logps/rejected", "lr", "grad_norm", "pairs"})
        EXPECT_TRUE(records[0].contains(key)) << key;
    EXPECT_TRUE(records.back().contains("dev"));
    fs::remove_all(dir);
}

TEST(Dpo, ReferenceLogProbsAreComputedOnceThenReadFromTheirCache) {
    const auto dir = fresh_dir("dpo_cache");
    const auto pairs = synthetic_pairs(dir);
    const auto reference = write_reference(dir);
    DpoRecipe recipe = tiny_dpo_recipe(reference);
    recipe.run.max_steps = 2;
    const auto cache = reference_cache_path(pairs.path);
    EXPECT_FALSE(fs::exists(cache));
    const auto first = run_dpo(recipe, tiny(), pairs, options_in(dir, "a"));
    EXPECT_FALSE(first.reference.from_cache);
    EXPECT_EQ(first.reference.sequences_scored, 2 * pairs.examples.size());
    ASSERT_TRUE(fs::exists(cache));

    // Another run on the same pairs and reference, and a resumed one: no reference pass at all.
    const auto second = run_dpo(recipe, tiny(), pairs, options_in(dir, "b"));
    EXPECT_TRUE(second.reference.from_cache);
    EXPECT_EQ(second.reference.sequences_scored, 0u);
    ASSERT_EQ(second.reference.pairs.size(), first.reference.pairs.size());
    for (std::size_t i = 0; i < first.reference.pairs.size(); ++i) {
        EXPECT_EQ(second.reference.pairs[i].chosen, first.reference.pairs[i].chosen);  // exact round trip
        EXPECT_EQ(second.reference.pairs[i].rejected, first.reference.pairs[i].rejected);
    }
    EXPECT_EQ(second.steps[0].loss, first.steps[0].loss);
    recipe.run.max_steps = 3;
    auto resumed = options_in(dir, "a");
    resumed.run.resume = true;
    EXPECT_THROW(run_dpo(recipe, tiny(), pairs, resumed), Error);  // the schedule changed: refused
    recipe.run.max_steps = 2;
    EXPECT_EQ(run_dpo(recipe, tiny(), pairs, resumed).reference.sequences_scored, 0u);

    // Another reference adapter: the key differs, so it is recomputed (and said why).
    const auto other = write_reference(dir / "other", 0.08);
    DpoRecipe changed = tiny_dpo_recipe(other);
    changed.run.max_steps = 1;
    const auto third = run_dpo(changed, tiny(), pairs, options_in(dir, "c"));
    EXPECT_FALSE(third.reference.from_cache);
    EXPECT_EQ(third.reference.sequences_scored, 2 * pairs.examples.size());
    EXPECT_NE(third.reference.note.find("reference_adapter"), std::string::npos) << third.reference.note;

    // A cache that is not one is an Error naming it, never silently trusted.
    std::ofstream(cache) << "{\"format\": \"something else\"}";
    EXPECT_THROW(run_dpo(changed, tiny(), pairs, options_in(dir, "d")), Error);
    fs::remove_all(dir);
}

// 2 micro-batches of 1 row equal 1 micro-batch of 2 rows: the pair normaliser is the whole step's.
TEST(Dpo, AccumulatedMicroBatchesEqualOneLargeBatch) {
    const auto dir = fresh_dir("dpo_accumulate");
    const auto pairs = synthetic_pairs(dir);
    DpoRecipe recipe = tiny_dpo_recipe(write_reference(dir));
    recipe.run.max_steps = 4;
    recipe.run.max_seq_len = 30;  // about one pair per row, so the rows' pair counts differ
    recipe.run.micro_batch = 1;
    recipe.run.grad_accumulation = 2;
    const auto accumulated = run_dpo(recipe, tiny(), pairs, options_in(dir, "accumulated"));
    recipe.run.micro_batch = 2;
    recipe.run.grad_accumulation = 1;
    const auto large = run_dpo(recipe, tiny(), pairs, options_in(dir, "large"));
    ASSERT_EQ(accumulated.steps.size(), large.steps.size());
    for (std::size_t i = 0; i < large.steps.size(); ++i) EXPECT_EQ(accumulated.steps[i].loss, large.steps[i].loss) << i;
    EXPECT_EQ(adapter_values(dir / "accumulated"), adapter_values(dir / "large"));
    fs::remove_all(dir);
}

// The child of ResumeAfterSigkillIsBitwiseIdentical: runs the DPO recipe in KINDRED_DPO_CHILD_DIR,
// and after step 7 (checkpoints at 3 and 6) announces it and waits to be killed. Skipped unless that
// variable is set: the parent re-executes this binary for it, so the child is a fresh process
// (a fork of a process whose thread pool already runs would inherit no workers).
TEST(DpoKill, Child) {
    const char* dir = std::getenv("KINDRED_DPO_CHILD_DIR");
    if (dir == nullptr) GTEST_SKIP() << "only run by Dpo.ResumeAfterSigkillIsBitwiseIdentical";
    const fs::path root(dir);
    const auto pairs = synthetic_pairs(root / "data");
    auto options = options_in(root, "killed");
    options.run.on_step = [&](std::int64_t step, double) {
        if (step == 7) {
            std::ofstream(root / "at-step-7") << "7\n";
            std::this_thread::sleep_for(std::chrono::seconds(60));  // bounded: the parent kills it first
        }
        return true;
    };
    DpoRecipe recipe = tiny_dpo_recipe((root / "reference").string());
    recipe.run.adapter.dropout = 0.1;  // the dropout stream must resume too
    run_dpo(recipe, tiny(), pairs, options);
}

TEST(Dpo, ResumeAfterSigkillIsBitwiseIdentical) {
    const auto dir = fresh_dir("dpo_kill");
    write_reference(dir);
    const auto pairs = synthetic_pairs(dir / "data");
    DpoRecipe recipe = tiny_dpo_recipe((dir / "reference").string());
    recipe.run.adapter.dropout = 0.1;
    const auto straight = run_dpo(recipe, tiny(), pairs, options_in(dir, "straight"));
    ASSERT_TRUE(straight.finished);

    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::setenv("KINDRED_DPO_CHILD_DIR", dir.c_str(), 1);
        const std::string self = fs::read_symlink("/proc/self/exe").string();
        ::execl(self.c_str(), self.c_str(), "--gtest_filter=DpoKill.Child", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(dir / "at-step-7") && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(fs::exists(dir / "at-step-7")) << "the child never reached step 7";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    EXPECT_FALSE(fs::exists(dir / "killed" / "adapter"));

    auto options = options_in(dir, "killed");
    options.run.resume = true;
    const auto resumed = run_dpo(recipe, tiny(), pairs, options);
    EXPECT_EQ(resumed.first_step, 6);  // the newest checkpoint; step 7 is redone
    EXPECT_EQ(resumed.reference.sequences_scored, 0u);
    ASSERT_TRUE(resumed.finished);
    for (std::size_t i = 0; i < resumed.steps.size(); ++i)
        EXPECT_EQ(resumed.steps[i].loss, straight.steps[i + 6].loss) << "step " << i + 7;
    const auto a = adapter_values(dir / "straight");
    const auto b = adapter_values(dir / "killed");
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)));
    // metrics.jsonl holds each step once: the killed run's step 7 record was dropped on resume.
    std::size_t step_records = 0;
    for (const auto& record : read_metrics_log((dir / "killed" / "metrics.jsonl").string()).records)
        step_records += record.contains("loss") ? 1 : 0;
    EXPECT_EQ(step_records, 12u);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace kindred::train
