// `mpirun -np 2 kindred train sft` against one process on the default model: the same losses and
// adapter as one rank with the same global batch (dropout on, so the ranks' masks must follow the
// one-process stream), and a job whose rank 1 is killed mid-run that, resumed with --resume, ends
// exactly where the uninterrupted two-rank run ended; and `mpirun -np 2 kindred train dpo` against
// one process the same way.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run_kindred.h"
#include "formats/safetensors.h"
#include "test_paths.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using kindred::testing::run_kindred;
using kindred::testing::source_path;

constexpr int kSteps = 6;

class DataParallelTraining : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
        dir_ = fs::temp_directory_path() / ("kindred-dp-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        // Open MPI refuses root unless told; CI containers run as root.
        ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        // Two rows per rank and step (micro_batch 2 x grad_accumulation 2), dropout on, a
        // checkpoint every step so a killed job has one to resume from.
        // A dev set with every head's labels, and the three heads trained (chat-smoke has no labels:
        // their losses are 0 in training), so the dev pass shared out over the ranks has the NLL and
        // all three heads' outputs to gather; the 7 conversations pack into several 96-token rows.
        // The safety KL is on: each example's teacher runs on one rank and the ranks share it.
        const std::string dev = (dir_ / "dev.jsonl").string();
        {
            std::ofstream out(dev);
            const char* lines[][3] = {{"I finally got the job!", "joy", "That's wonderful! How are you celebrating?"},
                                      {"My grandmother passed away last night.", "grief", "I'm so sorry. How are you holding up?"},
                                      {"I can't stop worrying about the exam.", "anxiety", "That sounds stressful. What worries you most?"},
                                      {"My roommate ate my leftovers again.", "annoyance", "Ugh, that's so frustrating. Did you talk to them?"},
                                      {"Nobody came to my birthday party.", "loneliness", "That must have hurt. Do you want to talk about it?"},
                                      {"I won the chess tournament!", "pride", "You worked so hard for that! How did the final go?"},
                                      {"The dentist appointment is tomorrow.", "fear", "That can be scary. What part worries you?"}};
            for (const auto& line : lines) {
                const nlohmann::json record = {
                    {"messages", {{{"role", "user"}, {"content", line[0]}},
                                  {{"role", "assistant"}, {"content", line[2]}, {"target", true}, {"strategies", {"Question"}}}}},
                    {"emotion", {{"labels", {line[1]}}}},
                    {"valence", 0.25},
                    {"arousal", 0.5}};
                out << record.dump() << "\n";
            }
        }
        // fp32 compute: the bounds below are those of fp32 sums added in another order. In bf16
        // (AMX) the same reordering also moves activations across bf16 rounding boundaries, which
        // the test Bf16TwoRanksMatchOneThroughTheSecondStep bounds separately.
        recipe_ = (dir_ / "recipe.yaml").string();
        std::ofstream(recipe_) << "model:\n  path: default\n  compute_dtype: fp32\n"
                               << "adapter:\n  rank: 4\n  alpha: 8\n  dropout: 0.1\n  targets: [q, v]\n"
                               << "data:\n  path: " << source_path("data/chat-smoke.jsonl") << "\n  dev_path: " << dev
                               << "\n  max_seq_len: 96\n"
                               << "objective:\n  emotion: 0.5\n  strategy: 0.5\n  valence_arousal: 0.5\n  safety_kl: 0.5\n"
                               << "optimisation:\n  max_steps: " << kSteps
                               << "\n  lr: 2.0e-3\n  warmup_steps: 1\n  micro_batch: 2\n  grad_accumulation: 2\n"
                               << "logging:\n  every: 1\n  progress: false\n"
                               << "output:\n  dir: " << (dir_ / "runs").string() << "\n  checkpoint_every: 1\n  keep_last: 10\n";
    }
    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
    }

    // The arguments of `kindred train sft`, one thread per process.
    std::string train_arguments(const std::string& name, bool resume) const {
        return "train sft --threads 1 --config " + recipe_ + " name=" + name + (resume ? " --resume" : "");
    }
    // `kindred arguments` on `ranks` processes (1: no mpirun).
    static kindred::testing::CommandResult launch(int ranks, const std::string& arguments) {
        if (ranks == 1) return run_kindred(arguments, true);
        return run_shell(mpirun(ranks) + " " + KINDRED_BINARY + " " + arguments + " 2>&1");
    }
    kindred::testing::CommandResult train(int ranks, const std::string& name, bool resume = false) const {
        return launch(ranks, train_arguments(name, resume));
    }
    // `kindred arguments name=N` as run `one` on one process, then as run `two` on two ranks.
    void run_on_one_and_two(const std::string& arguments, const std::string& one, const std::string& two) const {
        const auto single = launch(1, arguments + " name=" + one);
        ASSERT_EQ(single.exit_code, 0) << single.output;
        const auto pair = launch(2, arguments + " name=" + two);
        ASSERT_EQ(pair.exit_code, 0) << pair.output;
        EXPECT_NE(pair.output.find("data parallel: 2 ranks over mpi"), std::string::npos) << pair.output;
    }
    // Both runs logged `steps` losses, each pair within 1e-5 relative.
    void expect_same_losses(const std::string& one, const std::string& two, std::size_t steps) const {
        const auto losses_one = losses(one), losses_two = losses(two);
        ASSERT_EQ(losses_one.size(), steps);
        ASSERT_EQ(losses_two.size(), steps);
        for (std::size_t i = 0; i < steps; ++i)
            EXPECT_NEAR(losses_two[i], losses_one[i], 1e-5 * std::abs(losses_one[i])) << "step " << i + 1;
    }
    static std::string mpirun(int ranks) { return std::string(MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe"; }
    static kindred::testing::CommandResult run_shell(const std::string& command) {
        kindred::testing::CommandResult result;
        FILE* pipe = ::popen(command.c_str(), "r");
        if (pipe == nullptr) return result;
        char buffer[4096];
        std::size_t read = 0;
        while ((read = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, read);
        const int status = ::pclose(pipe);
        if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
        return result;
    }

    fs::path run(const std::string& name) const { return dir_ / "runs" / name; }

    // Each step record's `key` (the loss by default) from a run's metrics.jsonl.
    std::vector<double> losses(const std::string& name, const std::string& key = "loss") const {
        std::vector<double> out;
        std::ifstream in(run(name) / "metrics.jsonl");
        for (std::string line; std::getline(in, line);) {
            const auto record = nlohmann::json::parse(line);
            if (record.contains(key)) out.push_back(record[key].get<double>());
        }
        return out;
    }

    // The last dev record of a run's metrics.jsonl (null when there is none).
    nlohmann::json dev_record(const std::string& name) const {
        nlohmann::json out;
        std::ifstream in(run(name) / "metrics.jsonl");
        for (std::string line; std::getline(in, line);) {
            auto record = nlohmann::json::parse(line);
            if (record.contains("dev")) out = std::move(record["dev"]);
        }
        return out;
    }

    // The final adapter, or the one checkpointed after `step`.
    std::vector<float> adapter(const std::string& name, int step = 0) const {
        const fs::path path = step == 0 ? run(name) / "adapter/adapter_model.safetensors"
                                        : run(name) / "checkpoints" / fmt_step(step) / "adapter.safetensors";
        const auto file = kindred::safetensors::File::open(path.string());
        std::vector<float> values;
        for (const auto& tensor : file.tensors()) {
            EXPECT_EQ(tensor.type, kindred::DType::F32) << tensor.name;
            const auto* data = reinterpret_cast<const float*>(tensor.data.data());
            values.insert(values.end(), data, data + tensor.element_count());
        }
        return values;
    }
    static std::string fmt_step(int step) {
        char name[32];
        std::snprintf(name, sizeof name, "step-%06d", step);
        return name;
    }
    static double largest_difference(const std::vector<float>& a, const std::vector<float>& b) {
        EXPECT_EQ(a.size(), b.size());
        double worst = 0.0;
        for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
            worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
        return worst;
    }

    fs::path dir_;
    std::string recipe_;
};

// The pid of this job's rank `rank`: the process whose environment carries both our marker and
// Open MPI's rank variable.
pid_t find_rank(const std::string& marker, int rank) {
    const std::string wanted_rank = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(entry.path() / "environ", std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        bool has_marker = false, has_rank = false;
        std::string variable;
        while (std::getline(text, variable, '\0')) {
            has_marker = has_marker || variable == marker;
            has_rank = has_rank || variable == wanted_rank;
        }
        if (has_marker && has_rank) return static_cast<pid_t>(std::stol(name));
    }
    return -1;
}

TEST_F(DataParallelTraining, TwoRanksMatchOneAndAKilledRankResumesToTheSameEnd) {
    run_on_one_and_two("train sft --threads 1 --config " + recipe_, "one", "two");
    if (HasFatalFailure()) return;

    // Each step's gradient is the same sum of the same row gradients, added in another order
    // (rank 0's rows 0 and 2, rank 1's rows 1 and 3, then the two partial sums) than one process
    // adds them (0, 1, 2, 3). That reordering is all that differs (a misaligned dropout mask or a
    // row run twice or not at all would change the step-1 update of every B element it touches by
    // a whole lr-sized step, AdamW's first update being lr·sign(g)); its effect grows as the runs
    // go on, because AdamW divides by sqrt(v): where the rows' contributions nearly cancel, a
    // rounding-level change of the sum is a large relative change of the element's update.
    // Measured (with the safety KL, whose teacher targets the ranks share): step 2's adapters
    // differ by at most 7.3e-9, step 6's by 4.3e-5 (2% of one update at lr 2e-3). Bounds: 1e-7
    // after step 2 (14x the measurement, 5e-5 of one update), 1e-4 after step 6 (5% of one update;
    // any real fault moves elements by whole updates), and losses within 1e-5 relative.
    expect_same_losses("one", "two", kSteps);
    EXPECT_LT(largest_difference(adapter("one", 2), adapter("two", 2)), 1e-7) << "after step 2";
    EXPECT_LT(largest_difference(adapter("one"), adapter("two")), 1e-4) << "after the last step";
    EXPECT_TRUE(fs::exists(run("two") / "adapter/adapter_model.safetensors"));
    // The final dev pass, shared out over the ranks, scores the last step's adapters, which differ
    // as bounded above: NLL and the VA errors within 1e-5 relative (the step losses' bound), and
    // every count whole (a row missed or summed twice shows in them).
    const auto dev_one = dev_record("one"), dev_two = dev_record("two");
    ASSERT_FALSE(dev_one.is_null());
    ASSERT_FALSE(dev_two.is_null());
    for (const char* count : {"nll_tokens", "emotion_sites", "strategy_sites", "va_sites"}) {
        EXPECT_EQ(dev_two[count], dev_one[count]) << count;
        EXPECT_GT(dev_one[count].get<int>(), 0) << count;
    }
    for (const char* value : {"nll", "va_mse"})
        EXPECT_NEAR(dev_two[value].get<double>(), dev_one[value].get<double>(), 1e-5 * dev_one[value].get<double>()) << value;

    // The same job again, with rank 1 killed once the step-3 checkpoint exists.
    const std::string marker = "KINDRED_DP_TEST=" + std::to_string(::getpid());
    const std::string command = mpirun(2) + " -x KINDRED_DP_TEST " + KINDRED_BINARY + " " +
                                train_arguments("killed", false) + " > " + (dir_ / "killed.log").string() + " 2>&1";
    const std::string marker_value = marker.substr(marker.find('=') + 1);
    ::setenv("KINDRED_DP_TEST", marker_value.c_str(), 1);
    pid_t shell = -1;
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    ASSERT_EQ(::posix_spawn(&shell, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    ::unsetenv("KINDRED_DP_TEST");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    const fs::path third = run("killed") / "checkpoints" / fmt_step(3);
    while (!fs::exists(third) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(fs::exists(third)) << "the job never reached its third checkpoint";
    const pid_t victim = find_rank(marker, 1);
    ASSERT_GT(victim, 0) << "rank 1 of the job not found";
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(shell, &status, 0), shell);
    std::stringstream log;
    log << std::ifstream(dir_ / "killed.log").rdbuf();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "the job ended normally, killed too late?\n" << log.str();
    EXPECT_FALSE(fs::exists(run("killed") / "adapter/adapter_model.safetensors")) << log.str();

    const auto resumed = train(2, "killed", true);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_EQ(resumed.output.find("already complete"), std::string::npos) << resumed.output;
    // Same ranks, same reduction order, same thread count: bit for bit.
    EXPECT_EQ(losses("killed"), losses("two"));
    EXPECT_EQ(adapter("killed"), adapter("two"));
}

// In bf16 (AMX tiles; elsewhere bf16 computes in fp32 and this repeats the fp32 test's first
// steps) the ranks' reordered fp32 gradient sum still gives the one-process update up to rounding
// over the first two steps, but no further: from step 3 on, parameters a few 1e-9 apart round some
// activations to the neighbouring bf16 value (a 2^-8 relative change), and AdamW turns the changed
// gradient of elements whose rows nearly cancel into changes of a whole update. Measured on a
// Sapphire Rapids-class Xeon (6 steps of the recipe above in bf16): adapters equal after step 1,
// 6.3e-9 apart after step 2 and 2.3e-3 after step 3, and one process resumed from the two-rank job's
// step-2 checkpoint reaches the same 2.3e-3 on its own, so the divergence is bf16's sensitivity to
// the last bits of the parameters, not the data-parallel step. A misplaced row or dropout mask
// moves elements by whole updates at step 1. Bounds: step losses within 1e-5 relative (the fp32
// test's), the adapters within 1e-7 after step 1 and after step 2 (16x the measurement).
TEST_F(DataParallelTraining, Bf16TwoRanksMatchOneThroughTheSecondStep) {
    run_on_one_and_two("train sft --threads 1 --config " + recipe_ + " model.compute_dtype=bf16 optimisation.max_steps=2",
                       "bf16-one", "bf16-two");
    if (HasFatalFailure()) return;
    expect_same_losses("bf16-one", "bf16-two", 2);
    EXPECT_LT(largest_difference(adapter("bf16-one", 1), adapter("bf16-two", 1)), 1e-7) << "after step 1";
    EXPECT_LT(largest_difference(adapter("bf16-one"), adapter("bf16-two")), 1e-7) << "after step 2";
}

// DPO from a 2-step SFT adapter on eight conversational pairs, four pairs per step (two micro-batches
// of two rows, one pair per row at this length), dropout on: two ranks against one. The tolerances
// and their reasons are those of the SFT test above (the same reordering of the same row
// gradients, AdamW's division by sqrt(v) amplifying it as steps go on); measured: step 1's loss
// equal, step 3's 1.1e-6 relative apart, the adapters 1.5e-8 apart after step 2 and 8.9e-8 after
// step 3. The step's pair count in rank 0's record must be all four (each rank runs two: a missing
// all-reduce shows 2, rows run on both ranks 8), and the reward accuracy, a count over them, equal.
TEST_F(DataParallelTraining, DpoTwoRanksMatchOne) {
    const auto sft = run_kindred(train_arguments("sft", false) + " optimisation.max_steps=2", true);
    ASSERT_EQ(sft.exit_code, 0) << sft.output;
    const std::string pairs = (dir_ / "pairs.jsonl").string(), dev_pairs = (dir_ / "dev-pairs.jsonl").string();
    {
        std::ofstream out(pairs);
        const char* feelings[] = {"lonely since I moved", "nervous about my exam", "sad my dog is sick", "proud of my sister",
                                  "angry at my landlord", "tired of my job", "excited about the trip", "scared of the dentist"};
        for (const char* feeling : feelings) {
            const nlohmann::json line = {
                {"chosen", {{{"role", "user"}, {"content", std::string("I feel ") + feeling + "."}},
                            {{"role", "assistant"}, {"content", "That sounds like a lot to carry. What has it been like for you?"}}}},
                {"rejected", {{{"role", "user"}, {"content", std::string("I feel ") + feeling + "."}},
                              {{"role", "assistant"}, {"content", "Just get over it."}}}}};
            out << line.dump() << "\n";
        }
    }
    fs::copy_file(pairs, dev_pairs);
    const std::string recipe = (dir_ / "dpo.yaml").string();
    std::ofstream(recipe) << "model:\n  path: default\n  compute_dtype: fp32\n"
                          << "reference:\n  adapter: " << (run("sft") / "adapter").string() << "\n"
                          << "adapter:\n  dropout: 0.1\n"
                          << "data:\n  path: " << pairs << "\n  dev_path: " << dev_pairs << "\n  max_seq_len: 128\n"
                          << "dpo:\n  beta: 0.1\n"
                          << "optimisation:\n  max_steps: 3\n  lr: 2.0e-3\n  warmup_steps: 1\n  micro_batch: 2\n"
                          << "  grad_accumulation: 2\n"
                          << "logging:\n  every: 1\n  progress: false\n"
                          << "output:\n  dir: " << (dir_ / "runs").string() << "\n  checkpoint_every: 1\n  keep_last: 10\n";
    // The reference log-probs of the training and the dev pairs: scored by one process, then (its
    // caches moved aside, so nothing is read back) shared out over the two ranks, each row on one
    // rank and each value in the same row as one process scores it: the caches must be equal
    // bit for bit (JSON writes doubles round-trip exact).
    const auto cache_values = [](const std::string& path) {
        std::ifstream in(path);
        const auto cache = nlohmann::json::parse(in);
        return std::pair{cache.at("chosen"), cache.at("rejected")};
    };
    const std::string arguments = "train dpo --threads 1 --config " + recipe;
    const auto single = launch(1, arguments + " name=dpo-one");
    ASSERT_EQ(single.exit_code, 0) << single.output;
    for (const auto& file : {pairs, dev_pairs})
        fs::rename(file + ".reference-logps.json", file + ".one-rank-logps.json");
    const auto two = launch(2, arguments + " name=dpo-two");
    ASSERT_EQ(two.exit_code, 0) << two.output;
    EXPECT_NE(two.output.find("16 sequences scored once (shared out over 2 ranks)"), std::string::npos) << two.output;
    for (const auto& file : {pairs, dev_pairs})
        EXPECT_EQ(cache_values(file + ".reference-logps.json"), cache_values(file + ".one-rank-logps.json")) << file;
    expect_same_losses("dpo-one", "dpo-two", 3);
    // The dev pairs are scored shared out too, by the last step's policies, which differ as the
    // adapters do (below): the dev loss within the step losses' 1e-5 relative, all 8 pairs counted
    // (a missing sum shows 4 or a doubled one 16) with the same preference accuracy.
    const auto dev_one = dev_record("dpo-one"), dev_two = dev_record("dpo-two");
    ASSERT_FALSE(dev_one.is_null());
    ASSERT_FALSE(dev_two.is_null());
    EXPECT_NEAR(dev_two["loss"].get<double>(), dev_one["loss"].get<double>(), 1e-5 * dev_one["loss"].get<double>());
    EXPECT_EQ(dev_two["pairs"], 8);
    EXPECT_EQ(dev_two["preference_accuracy"], dev_one["preference_accuracy"]);
    EXPECT_EQ(losses("dpo-two", "rewards/accuracies"), losses("dpo-one", "rewards/accuracies"));
    EXPECT_EQ(losses("dpo-two", "pairs"), std::vector<double>(3, 4.0));
    EXPECT_LT(largest_difference(adapter("dpo-one", 2), adapter("dpo-two", 2)), 1e-7) << "after step 2";
    EXPECT_LT(largest_difference(adapter("dpo-one"), adapter("dpo-two")), 1e-4) << "after the last step";
}

}  // namespace
