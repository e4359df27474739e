// Tests for train/sft.h and train/recipe.h on the random tiny Llama of tests/goldens/inference
// (2 layers, vocab 96, context 64): the loss falls; a run stopped midway and resumed reproduces the
// uninterrupted run bit for bit (losses, metrics.jsonl, final adapter), dropout and gradient
// accumulation included; non-finite steps stop or are skipped; recipe errors name key and line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "core/metrics_log.h"
#include "formats/peft_adapter.h"
#include "train/checkpoint.h"
#include "train/recipe.h"
#include "train/sft.h"
#include "test_paths.h"
#include "tiny_sft_model.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

using testing::fresh_dir;
using testing::options_for;
using testing::Tiny;
using testing::tiny;
using testing::tiny_recipe;

// Learnable synthetic "conversations": a prompt of 4 tokens, then a reply counting up by a
// per-example stride (mod 90, ids 3..92); only the reply is a target, as in assistant-only SFT.
std::vector<TokenizedExample> synthetic_examples() {
    std::vector<TokenizedExample> examples;
    for (int e = 0; e < 24; ++e) {
        TokenizedExample example;
        const int stride = 1 + e % 3;
        const int length = 10 + e % 7;
        for (int t = 0; t < length; ++t) example.tokens.push_back(3 + (e * 5 + t * stride) % 90);
        example.targets.assign(example.tokens.size(), kIgnoreTarget);
        for (std::size_t t = 3; t + 1 < example.tokens.size(); ++t) {
            example.targets[t] = example.tokens[t + 1];
            ++example.target_count;
        }
        example.line = static_cast<std::size_t>(e + 1);
        examples.push_back(std::move(example));
    }
    return examples;
}

TEST(Sft, LossFallsOnTinyModel) {
    const auto examples = synthetic_examples();
    const auto dir = fresh_dir("falls");
    const auto result = run_sft(tiny_recipe(), tiny(), examples, options_for(dir));
    ASSERT_EQ(result.losses.size(), 30u);
    EXPECT_TRUE(result.finished);
    double first = 0.0, last = 0.0;
    for (int i = 0; i < 5; ++i) {
        first += result.losses[static_cast<std::size_t>(i)] / 5.0;
        last += result.losses[static_cast<std::size_t>(25 + i)] / 5.0;
    }
    // The random model starts near ln(96) = 4.56; the counting pattern is easy for rank-4 adapters
    // on every projection, so the mean of the last 5 steps must be well under the first 5's.
    EXPECT_LT(last, 0.8 * first) << "first " << first << " last " << last;

    // The run directory holds everything sft.h promises.
    for (const char* file : {"config.yaml", "metrics.jsonl", "loss.svg", "lr.svg", "adapter/adapter_config.json",
                             "adapter/adapter_model.safetensors", "checkpoints/latest"})
        EXPECT_TRUE(fs::exists(dir / file)) << file;
    const auto records = read_metrics_log((dir / "metrics.jsonl").string()).records;
    ASSERT_EQ(records.size(), 30u);
    for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed", "target_tokens"})
        EXPECT_TRUE(records[0].contains(key)) << key;
    const auto adapter = peft::read_adapter((dir / "adapter").string());
    EXPECT_EQ(adapter.config.r, 4u);
    EXPECT_EQ(adapter.tensors.size(), 2u * 7u * 2u);
    fs::remove_all(dir);
}

// Run N steps straight, versus K steps + a stop + resume to N: every loss, every metrics record's
// loss and grad norm and the final adapter must be identical (no tolerance: the same operations
// in the same order on the same thread count). Dropout and accumulation make the state richer.
TEST(Sft, ResumeReproducesTheUninterruptedRunBitwise) {
    const auto examples = synthetic_examples();
    SftRecipe recipe = tiny_recipe();
    recipe.max_steps = 12;
    recipe.checkpoint_every = 4;
    recipe.adapter.dropout = 0.1;
    recipe.grad_accumulation = 2;
    recipe.micro_batch = 2;

    const auto straight_dir = fresh_dir("straight");
    const auto straight = run_sft(recipe, tiny(), examples, options_for(straight_dir));
    ASSERT_EQ(straight.losses.size(), 12u);

    // Stopped after step 6: the newest checkpoint is step 4, so the resumed run redoes 5 and 6
    // (as after a kill -9 between checkpoints), and metrics.jsonl must not keep the first 5 and 6.
    const auto resumed_dir = fresh_dir("resumed");
    auto options = options_for(resumed_dir);
    options.on_step = [](std::int64_t step, double) { return step < 6; };
    const auto first = run_sft(recipe, tiny(), examples, options);
    EXPECT_FALSE(first.finished);
    ASSERT_EQ(first.last_step, 6);
    options.on_step = nullptr;
    EXPECT_THROW(run_sft(recipe, tiny(), examples, options), Error);  // not without resume
    options.resume = true;
    const auto second = run_sft(recipe, tiny(), examples, options);
    EXPECT_EQ(second.first_step, 4);
    ASSERT_EQ(second.losses.size(), 8u);
    EXPECT_TRUE(second.finished);
    for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(first.losses[i], straight.losses[i]) << "step " << i + 1;
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(second.losses[i], straight.losses[i + 4]) << "step " << i + 5;

    const auto a = read_metrics_log((straight_dir / "metrics.jsonl").string()).records;
    const auto b = read_metrics_log((resumed_dir / "metrics.jsonl").string()).records;
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(b[i]["step"], a[i]["step"]);
        EXPECT_EQ(b[i]["loss"], a[i]["loss"]);
        EXPECT_EQ(b[i]["grad_norm"], a[i]["grad_norm"]);
    }
    const auto adapter_a = peft::read_adapter((straight_dir / "adapter").string());
    const auto adapter_b = peft::read_adapter((resumed_dir / "adapter").string());
    ASSERT_EQ(adapter_a.tensors.size(), adapter_b.tensors.size());
    for (std::size_t i = 0; i < adapter_a.tensors.size(); ++i)
        EXPECT_EQ(adapter_a.tensors[i].values, adapter_b.tensors[i].values) << adapter_a.tensors[i].name;
    fs::remove_all(straight_dir);
    fs::remove_all(resumed_dir);
}

// A newest checkpoint that fails its file check is skipped for the one before it, and the run says
// so even with the progress display off (logging.progress: false), since it trains steps again.
TEST(Sft, ASkippedCorruptCheckpointIsSaidWithoutTheProgressDisplay) {
    const auto examples = synthetic_examples();
    SftRecipe recipe = tiny_recipe();
    recipe.max_steps = 6;
    recipe.checkpoint_every = 2;
    ASSERT_FALSE(recipe.progress);
    const auto dir = fresh_dir("corrupt_checkpoint");
    auto options = options_for(dir);
    options.on_step = [](std::int64_t step, double) { return step < 4; };
    ASSERT_EQ(run_sft(recipe, tiny(), examples, options).last_step, 4);
    const fs::path newest = dir / "checkpoints" / "step-000004" / "adapter.safetensors";
    ASSERT_TRUE(fs::exists(newest));
    {
        std::fstream file(newest, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(-1, std::ios::end);
        file.put('\x7f');
    }
    options.on_step = nullptr;
    options.resume = true;
    ::testing::internal::CaptureStderr();
    const auto resumed = run_sft(recipe, tiny(), examples, options);
    const std::string said = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(resumed.first_step, 2);
    EXPECT_NE(said.find("warning: skipped checkpoint " + (dir / "checkpoints" / "step-000004").string()), std::string::npos)
        << said;
    fs::remove_all(dir);
}

// Accumulation normalises by the whole step's target tokens: 2 micro-batches of 1 row must train
// exactly like 1 micro-batch of 2 rows (same rows, same order); normalising each micro-batch by
// its own targets would weight the rows differently and change every loss after the first update.
TEST(Sft, AccumulatedMicroBatchesEqualOneLargeBatch) {
    const auto examples = synthetic_examples();
    SftRecipe recipe = tiny_recipe();
    recipe.max_steps = 6;
    recipe.max_seq_len = 20;  // about one example per row, so the two rows' target counts differ
    recipe.micro_batch = 1;
    recipe.grad_accumulation = 2;
    const auto accumulated_dir = fresh_dir("accumulated");
    const auto accumulated = run_sft(recipe, tiny(), examples, options_for(accumulated_dir));
    recipe.micro_batch = 2;
    recipe.grad_accumulation = 1;
    const auto large_dir = fresh_dir("large");
    const auto large = run_sft(recipe, tiny(), examples, options_for(large_dir));
    EXPECT_EQ(accumulated.losses, large.losses);
    fs::remove_all(accumulated_dir);
    fs::remove_all(large_dir);
}

// A copy of the tiny model whose embedding row of token 95 is NaN: only the one example holding
// that token makes its step non-finite, which is what a numerical blow-up looks like to the loop.
struct PoisonedTiny {
    fs::path dir = fresh_dir("poisoned_model");
    std::unique_ptr<Tiny> model;
    PoisonedTiny() {
        const auto source = kindred::testing::source_path("tests/goldens/inference/tiny-llama");
        fs::copy_file(source + "/config.json", dir / "config.json");
        std::ifstream in(source + "/model.safetensors", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::uint64_t header = 0;
        std::memcpy(&header, bytes.data(), 8);
        const auto meta = nlohmann::json::parse(bytes.substr(8, header));
        const auto& embed = meta.at("model.embed_tokens.weight");
        EXPECT_EQ(embed["dtype"], "F32");
        const auto row = 8 + header + embed["data_offsets"][0].get<std::uint64_t>() + 95u * 64u * 4u;
        const float nan = std::nanf("");
        for (std::uint64_t i = 0; i < 64; ++i) std::memcpy(bytes.data() + row + 4 * i, &nan, 4);
        std::ofstream(dir / "model.safetensors", std::ios::binary) << bytes;
        model = std::make_unique<Tiny>(dir.string());
    }
    ~PoisonedTiny() { fs::remove_all(dir); }
};

TEST(Sft, NonFiniteStepStopsWithoutCheckpointingItOrIsSkipped) {
    (void)tiny();  // fixes the thread count
    PoisonedTiny poisoned;
    auto examples = synthetic_examples();
    examples[5].tokens[0] = 95;
    SftRecipe recipe = tiny_recipe();
    recipe.max_steps = 24;  // one epoch of single-row steps at most: the poisoned example comes up
    recipe.checkpoint_every = 1;
    recipe.keep_last = 0;
    const auto dir = fresh_dir("nan");
    std::int64_t bad_step = 0;
    try {
        run_sft(recipe, *poisoned.model->decoder, examples, options_for(dir));
        FAIL() << "expected an Error";
    } catch (const Error& error) {
        const std::string message = error.what();
        ASSERT_EQ(message.rfind("step ", 0), 0u) << message;
        bad_step = std::stoll(message.substr(5));
        EXPECT_NE(message.find("non-finite loss"), std::string::npos) << message;
    }
    ASSERT_GT(bad_step, 1);
    const auto latest = load_latest_checkpoint((dir / "checkpoints").string());
    EXPECT_EQ(latest.state.step, bad_step - 1);
    EXPECT_FALSE(fs::exists(dir / "checkpoints" / checkpoint_dir_name(bad_step)));
    for (const auto& tensor : latest.state.adapter)
        for (const float value : tensor.values) ASSERT_TRUE(std::isfinite(value)) << tensor.name;
    fs::remove_all(dir);

    recipe.nan_policy = NanPolicy::Skip;
    const auto skip_dir = fresh_dir("nan_skip");
    const auto result = run_sft(recipe, *poisoned.model->decoder, examples, options_for(skip_dir));
    EXPECT_TRUE(result.finished);
    EXPECT_GE(result.skipped_steps, 1);
    EXPECT_TRUE(std::isnan(result.losses[static_cast<std::size_t>(bad_step - 1)]));
    // The skipped update kept NaN out of the adapter, so later steps train normally.
    EXPECT_TRUE(std::isfinite(result.losses.back()));
    for (const auto& tensor : peft::read_adapter((skip_dir / "adapter").string()).tensors)
        for (const float value : tensor.values) ASSERT_TRUE(std::isfinite(value)) << tensor.name;
    fs::remove_all(skip_dir);
}

TEST(SftRecipe, ReadsSectionsAndRejectsUnknownKeysWithLine) {
    const auto dir = fresh_dir("recipe");
    const auto data = (dir / "chat.jsonl").string();
    std::ofstream(data) << "{}\n";
    const std::string good = fmt::format(
        "name: t\nmodel:\n  path: default\nadapter:\n  rank: 8\n  targets: [q, v]\ndata:\n  path: {}\n  max_seq_len: 256\n"
        "optimisation:\n  lr: 1.0e-4\n  betas: [0.9, 0.95]\n  schedule: constant\n  max_steps: 10\n  nan_policy: skip\n",
        data);
    auto config = Config::parse(good, "good.yaml");
    const auto recipe = read_sft_recipe(config);
    EXPECT_EQ(recipe.adapter.rank, 8);
    EXPECT_EQ(recipe.adapter.targets, (std::vector<std::string>{"q", "v"}));
    EXPECT_EQ(recipe.beta2, 0.95);
    EXPECT_EQ(recipe.schedule, LrDecay::Constant);
    EXPECT_EQ(recipe.nan_policy, NanPolicy::Skip);
    EXPECT_NE(recipe.resolved_yaml.find("checkpoint_every: 50"), std::string::npos);

    auto misspelt = Config::parse(good + "  warmup_stepz: 3\n", "bad.yaml");
    try {
        read_sft_recipe(misspelt);
        FAIL() << "expected an Error";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("optimisation.warmup_stepz"), std::string::npos) << message;
        EXPECT_NE(message.find("line 16"), std::string::npos) << message;
    }
    auto bad_enum_text = good;
    bad_enum_text.replace(bad_enum_text.find("constant"), 8, "linear");
    auto wrong_value = Config::parse(bad_enum_text, "enum.yaml");
    EXPECT_THROW(read_sft_recipe(wrong_value), Error);
    auto missing = Config::parse("data:\n  path: /nonexistent/x.jsonl\n", "missing.yaml");
    try {
        read_sft_recipe(missing);
        FAIL() << "expected an Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("data.path"), std::string::npos) << error.what();
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace kindred::train
