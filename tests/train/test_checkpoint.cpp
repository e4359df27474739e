// Tests for train/checkpoint.h: a bit-exact round trip, pruning, refusal of torn or corrupted
// checkpoints with fallback to the previous one, and SIGKILL at random moments while saving.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "core/error.h"
#include "train/checkpoint.h"

namespace kindred::train {
namespace {
namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
    const auto dir = fs::temp_directory_path() / fmt::format("kindred_sftdata_{}_{}", name, ::getpid());
    fs::remove_all(dir);
    return dir;
}

NamedTensor make_tensor(std::string name, std::vector<std::uint64_t> shape, std::mt19937& rng) {
    NamedTensor t{std::move(name), std::move(shape), {}};
    std::uint64_t count = 1;
    for (const auto d : t.shape) count *= d;
    std::normal_distribution<float> normal;
    for (std::uint64_t i = 0; i < count; ++i) t.values.push_back(normal(rng));
    return t;
}

TrainState make_state(std::int64_t step, std::size_t lora_rank = 4) {
    std::mt19937 rng(static_cast<unsigned>(step));
    TrainState s;
    s.step = step;
    s.adam_step = step;
    for (const auto* name : {"model.layers.0.self_attn.q_proj.lora_A", "model.layers.0.self_attn.q_proj.lora_B"}) {
        const bool a = std::string_view(name).ends_with("A");
        s.adapter.push_back(make_tensor(name, a ? std::vector<std::uint64_t>{lora_rank, 576} : std::vector<std::uint64_t>{576, lora_rank}, rng));
        s.adam_m.push_back(make_tensor(name, s.adapter.back().shape, rng));
        s.adam_v.push_back(make_tensor(name, s.adapter.back().shape, rng));
    }
    // Values whose bits a lossy path would change: -0, a denormal, NaN with a payload, infinity.
    auto& v = s.adapter[0].values;
    v[0] = -0.0f;
    v[1] = std::numeric_limits<float>::denorm_min();
    std::uint32_t nan_bits = 0x7fc12345u;
    std::memcpy(&v[2], &nan_bits, sizeof nan_bits);
    v[3] = -std::numeric_limits<float>::infinity();
    std::mt19937_64 engine(99 + static_cast<unsigned>(step));
    engine.discard(5);
    std::ostringstream rng_text;
    rng_text << engine;
    s.rng = rng_text.str();
    s.data = {2, static_cast<std::uint64_t>(step) * 3};
    s.schedule = {2e-4, 10, 1000, LrDecay::Cosine, 0.1, 0.5};
    s.config_text = "model: default\noptim:\n  lr: 0.0002\n";
    return s;
}

bool same_bits(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].name != b[i].name || a[i].shape != b[i].shape || a[i].values.size() != b[i].values.size()) return false;
        if (std::memcmp(a[i].values.data(), b[i].values.data(), a[i].values.size() * sizeof(float)) != 0) return false;
    }
    return true;
}

void expect_same(const TrainState& a, const TrainState& b) {
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.adam_step, b.adam_step);
    EXPECT_TRUE(same_bits(a.adapter, b.adapter));
    EXPECT_TRUE(same_bits(a.adam_m, b.adam_m));
    EXPECT_TRUE(same_bits(a.adam_v, b.adam_v));
    EXPECT_EQ(a.rng, b.rng);
    EXPECT_EQ(a.data, b.data);
    EXPECT_EQ(a.schedule.peak_lr, b.schedule.peak_lr);
    EXPECT_EQ(a.schedule.warmup_steps, b.schedule.warmup_steps);
    EXPECT_EQ(a.schedule.total_steps, b.schedule.total_steps);
    EXPECT_EQ(a.schedule.decay, b.schedule.decay);
    EXPECT_EQ(a.schedule.min_lr_ratio, b.schedule.min_lr_ratio);
    EXPECT_EQ(a.schedule.cycles, b.schedule.cycles);
    EXPECT_EQ(a.config_text, b.config_text);
}

void overwrite_byte(const fs::path& path, std::uintmax_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x10));
}

TEST(Checkpoint, RoundTripIsBitExact) {
    const auto root = fresh_dir("roundtrip");
    EXPECT_TRUE(load_latest_checkpoint(root.string()).directory.empty());  // a fresh run
    const auto state = make_state(120);
    const auto dir = save_checkpoint(root.string(), state, 3);
    EXPECT_EQ(fs::path(dir).filename(), "step-000120");
    const auto loaded = load_latest_checkpoint(root.string());
    EXPECT_EQ(loaded.directory, dir);
    EXPECT_TRUE(loaded.rejected.empty());
    expect_same(state, loaded.state);
    // The RNG resumes where it stopped.
    std::mt19937_64 a(99 + 120), b;
    a.discard(5);
    std::istringstream(loaded.state.rng) >> b;
    EXPECT_EQ(a(), b());
    EXPECT_NO_THROW(check_adapter_layout(loaded.state, state.adapter));
    EXPECT_THROW(check_adapter_layout(loaded.state, make_state(1, 8).adapter), Error);
    fs::remove_all(root);
}

TEST(Checkpoint, KeepsTheLastN) {
    const auto root = fresh_dir("prune");
    for (std::int64_t step = 1; step <= 5; ++step) save_checkpoint(root.string(), make_state(step * 10), 2);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-000040", "step-000050"}));
    fs::remove_all(root);
}

TEST(Checkpoint, RejectsTornOrCorruptedAndFallsBackToThePrevious) {
    const auto root = fresh_dir("corrupt");
    const auto first = make_state(1);
    save_checkpoint(root.string(), first, 0);
    const auto second_dir = fs::path(save_checkpoint(root.string(), make_state(2), 0));

    const auto expect_fallback = [&](const char* what) {
        const auto loaded = load_latest_checkpoint(root.string());
        EXPECT_EQ(loaded.state.step, 1) << what;
        expect_same(first, loaded.state);
        ASSERT_EQ(loaded.rejected.size(), 1u) << what;
        EXPECT_NE(loaded.rejected[0].find("step-000002"), std::string::npos) << loaded.rejected[0];
        EXPECT_THROW(load_checkpoint(second_dir.string()), Error) << what;
        // The resumed run reaches step 2 again: its save replaces the broken folder.
        save_checkpoint(root.string(), make_state(2), 0);
        EXPECT_EQ(load_latest_checkpoint(root.string()).state.step, 2);
    };

    fs::resize_file(second_dir / "adapter.safetensors", fs::file_size(second_dir / "adapter.safetensors") / 2);
    expect_fallback("truncated adapter");
    overwrite_byte(second_dir / "optimizer.safetensors", fs::file_size(second_dir / "optimizer.safetensors") - 3);
    expect_fallback("flipped optimizer byte");
    fs::remove(second_dir / "state.json");
    expect_fallback("no state.json");
    fs::resize_file(second_dir / "state.json", 40);
    expect_fallback("truncated state.json");
    overwrite_byte(second_dir / "config.yaml", 2);
    expect_fallback("edited config");
    {
        std::string text;
        std::getline(std::ifstream(second_dir / "state.json"), text, '\0');
        text.replace(text.find("\"version\": 1"), 12, "\"version\": 9");
        std::ofstream(second_dir / "state.json", std::ios::binary | std::ios::trunc) << text;
        try {
            load_checkpoint(second_dir.string());
            ADD_FAILURE() << "version 9 accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("version 9 is not supported"), std::string::npos) << e.what();
        }
    }
    expect_fallback("unknown version");

    // A `latest` naming a missing folder falls back too; with nothing valid at all, an Error.
    std::ofstream(root / "latest", std::ios::trunc) << "step-000007\n";
    EXPECT_EQ(load_latest_checkpoint(root.string()).state.step, 2);
    fs::resize_file(second_dir / "adapter.safetensors", 10);
    fs::resize_file(root / "step-000001" / "optimizer.safetensors", 10);
    EXPECT_THROW(load_latest_checkpoint(root.string()), Error);
    fs::remove_all(root);
}

TEST(Checkpoint, RefusesInconsistentState) {
    const auto root = fresh_dir("inconsistent");
    auto state = make_state(3);
    state.adam_v.pop_back();
    EXPECT_THROW(save_checkpoint(root.string(), state, 0), Error);
    state = make_state(3);
    state.adapter[1].values.pop_back();
    EXPECT_THROW(save_checkpoint(root.string(), state, 0), Error);
    state = make_state(3);
    state.adam_m[0].name = "other";
    EXPECT_THROW(save_checkpoint(root.string(), state, 0), Error);
    EXPECT_FALSE(fs::exists(root / "latest"));
    fs::remove_all(root);
}

// A child process resumes from the latest checkpoint and saves step after step until it is
// killed at a random moment; the parent then checks that `latest` names a checkpoint that loads.
TEST(Checkpoint, SigkillWhileSavingNeverBreaksLatest) {
    const auto root = fresh_dir("sigkill");
    std::mt19937 rng(2024);
    std::uniform_int_distribution<int> delay_us(0, 150000);
    const auto start = std::chrono::steady_clock::now();
    std::int64_t last_step = 0;
    int kills = 0;
    for (int round = 0; round < 40 && std::chrono::steady_clock::now() - start < std::chrono::seconds(6); ++round) {
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            try {
                const auto loaded = load_latest_checkpoint(root.string());
                std::int64_t step = loaded.directory.empty() ? 0 : loaded.state.step;
                // Bounded, so an orphan could never run on; 64 x 576 adapters make each save take a while.
                for (int i = 0; i < 200; ++i) save_checkpoint(root.string(), make_state(++step, 64), 2);
            } catch (...) {
                ::_exit(1);
            }
            ::_exit(0);
        }
        // On a loaded machine the first save may outlast the random delays; then give it time.
        const bool saved_once = fs::exists(root / "latest");
        ::usleep(static_cast<useconds_t>(saved_once || round < 3 ? delay_us(rng) : 500000));
        ::kill(child, SIGKILL);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        if (WIFSIGNALED(status)) ++kills;
        ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "the child failed to resume or save";

        if (!fs::exists(root / "latest")) continue;  // killed before the first save completed
        std::string name;
        std::getline(std::ifstream(root / "latest"), name);
        TrainState state;
        ASSERT_NO_THROW(state = load_checkpoint((root / name).string())) << "latest names a broken " << name;
        expect_same(make_state(state.step, 64), state);
        EXPECT_GE(state.step, last_step);
        last_step = state.step;
    }
    EXPECT_GT(kills, 5);
    EXPECT_GT(last_step, 0);
    fs::remove_all(root);
}

}  // namespace
}  // namespace kindred::train
