// Tests for train/safety_teacher.h on the random tiny Llama (vocab 96): the cached top-k equals a
// direct softmax of Decoder::forward's logits at τ, the residual is the rest of the mass, targets
// are cached per example index, and bad settings or misaligned teacher inputs are Errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/communicator.h"
#include "model/kv_cache.h"
#include "model/lora_adapters.h"
#include "train/safety_teacher.h"
#include "tiny_sft_model.h"

namespace kindred::train {
namespace {

using testing::tiny;

// A student conversation (8 tokens, targets at positions 3..6) and its teacher version with three
// "rules" tokens in front: teacher positions = student positions + 3, same next tokens.
TokenizedExample example_with_teacher() {
    TokenizedExample example;
    example.tokens = {81, 12, 81, 5, 40, 41, 42, 2};
    example.targets.assign(example.tokens.size(), kIgnoreTarget);
    for (std::size_t t = 3; t + 1 < example.tokens.size(); ++t) {
        example.targets[t] = example.tokens[t + 1];
        ++example.target_count;
    }
    example.line = 17;
    example.teacher_tokens = {1, 30, 31};
    example.teacher_tokens.insert(example.teacher_tokens.end(), example.tokens.begin(), example.tokens.end());
    example.teacher_positions = {6, 7, 8, 9};
    return example;
}

TEST(SafetyTeacher, TopKEqualsDirectSoftmaxOfTheBaseLogits) {
    model::Decoder& base = tiny();
    const std::int64_t vocab = base.config().vocab_size, k = 8;
    const float tau = 2.0f;
    const TokenizedExample example = example_with_teacher();
    SafetyTeacher teacher(base, tau, k);
    const TeacherTargets& targets = teacher.targets(0, example);
    ASSERT_EQ(targets.k, k);
    ASSERT_EQ(targets.targets(), example.target_count);
    ASSERT_EQ(targets.ids.size(), example.target_count * static_cast<std::size_t>(k));

    // Direct: one forward over the whole teacher sequence, all logits.
    const auto n = static_cast<std::int64_t>(example.teacher_tokens.size());
    model::KvCache cache(base.config(), n);
    std::vector<float> logits(static_cast<std::size_t>(n * vocab));
    base.forward(example.teacher_tokens, cache, logits, true);
    for (std::size_t j = 0; j < example.teacher_positions.size(); ++j) {
        SCOPED_TRACE(j);
        const float* z = logits.data() + example.teacher_positions[j] * vocab;
        const double top = *std::max_element(z, z + vocab);
        std::vector<double> p(static_cast<std::size_t>(vocab));
        double sum = 0.0;
        for (std::int64_t v = 0; v < vocab; ++v) sum += p[static_cast<std::size_t>(v)] = std::exp((z[v] - top) / tau);
        for (double& x : p) x /= sum;
        std::vector<std::int32_t> ranked(static_cast<std::size_t>(vocab));
        std::iota(ranked.begin(), ranked.end(), 0);
        std::stable_sort(ranked.begin(), ranked.end(), [&](std::int32_t a, std::int32_t b) { return z[a] > z[b]; });
        double kept = 0.0;
        for (std::int64_t i = 0; i < k; ++i) {
            const std::size_t at = j * static_cast<std::size_t>(k) + static_cast<std::size_t>(i);
            EXPECT_EQ(targets.ids[at], ranked[static_cast<std::size_t>(i)]) << "rank " << i;
            // The teacher's forward covers only the prefix it needs (10 of 11 tokens), so its sgemm
            // row counts differ from this forward's: logits may differ in the last bits (≲ 1e-6
            // relative), which moves a probability by ≲ 1e-6 · |z|/τ ≲ 1e-6. Rounding to fp32 adds 6e-8.
            EXPECT_NEAR(targets.probs[at], p[static_cast<std::size_t>(ranked[static_cast<std::size_t>(i)])], 1e-6);
            kept += targets.probs[at];
            if (i > 0) {
                EXPECT_LE(targets.probs[at], targets.probs[at - 1]);  // most probable first
            }
        }
        // 1 − Σ of k fp32 probabilities: the sum of their roundings, ≤ k · 6e-8.
        EXPECT_NEAR(targets.residual[j], 1.0 - kept, 1e-6);
        EXPECT_GT(targets.residual[j], 0.0f);  // k = 8 of 96 classes cannot hold all the mass at τ = 2
    }
    EXPECT_EQ(teacher.cached_bytes(), example.target_count * static_cast<std::size_t>(k * 8 + 4));
}

TEST(SafetyTeacher, CachesPerExampleIndex) {
    SafetyTeacher teacher(tiny(), 2.0f, 4);
    const TokenizedExample example = example_with_teacher();
    const TeacherTargets& first = teacher.targets(3, example);
    const std::size_t bytes = teacher.cached_bytes();
    // The index names the example: a second call returns the same object without recomputing,
    // even when handed another example (documented: the index must keep naming the same one).
    TokenizedExample other = example;
    other.teacher_positions.clear();  // would be an Error if it were computed
    EXPECT_EQ(&teacher.targets(3, other), &first);
    EXPECT_EQ(teacher.cached_bytes(), bytes);
    EXPECT_EQ(teacher.cached_examples(), 1u);
    const TeacherTargets& second = teacher.targets(4, example);
    EXPECT_NE(&second, &first);
    EXPECT_EQ(second.ids, first.ids);
    EXPECT_EQ(second.probs, first.probs);
    EXPECT_EQ(teacher.cached_bytes(), 2 * bytes);
    EXPECT_EQ(&teacher.targets(3, example), &first);  // still valid after another insertion
}

// A conversation of `prefix` then `tail` that is its own teacher input (no rules tokens): targets
// at every position from `first_target` on.
TokenizedExample shared_prefix_example(const std::vector<std::int32_t>& prefix, const std::vector<std::int32_t>& tail,
                                       std::int32_t first_target) {
    TokenizedExample example;
    example.tokens = prefix;
    example.tokens.insert(example.tokens.end(), tail.begin(), tail.end());
    example.targets.assign(example.tokens.size(), kIgnoreTarget);
    for (auto t = static_cast<std::size_t>(first_target); t + 1 < example.tokens.size(); ++t) {
        example.targets[t] = example.tokens[t + 1];
        example.teacher_positions.push_back(static_cast<std::int32_t>(t));
        ++example.target_count;
    }
    example.teacher_tokens = example.tokens;
    return example;
}

TEST(SafetyTeacher, SharedLeadingChunksAreReusedBitForBit) {
    // Chunks of 8 on the tiny model (context 64): three conversations share their first 20 tokens,
    // so after the first, each reuses two whole chunks (16 tokens) of the previous input's keys and
    // values; the third chunk differs from token 20 on and is recomputed.
    const std::int64_t chunk = 8;
    std::vector<std::int32_t> prefix(20);
    for (std::size_t i = 0; i < prefix.size(); ++i) prefix[i] = static_cast<std::int32_t>(3 + (i * 7) % 80);
    const std::vector<TokenizedExample> examples{shared_prefix_example(prefix, {40, 41, 42, 43, 44, 45, 2}, 22),
                                                 shared_prefix_example(prefix, {50, 51, 52, 53, 2}, 21),
                                                 shared_prefix_example(prefix, {60, 61, 62, 63, 64, 65, 66, 67, 2}, 24),
                                                 // the first again: its first target (22) bounds the reuse at 16
                                                 shared_prefix_example(prefix, {40, 41, 42, 43, 44, 45, 2}, 22),
                                                 // shares only 5 tokens: nothing reused
                                                 shared_prefix_example(std::vector<std::int32_t>(prefix.begin(), prefix.begin() + 5),
                                                                       {70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 2}, 18)};
    SafetyTeacher in_order(tiny(), 2.0f, 4, chunk);
    std::size_t forwarded = 0;
    for (std::size_t i = 0; i < examples.size(); ++i) {
        SCOPED_TRACE(i);
        const TeacherTargets& reusing = in_order.targets(i, examples[i]);
        SafetyTeacher alone(tiny(), 2.0f, 4, chunk);  // nothing to reuse
        const TeacherTargets& fresh = alone.targets(i, examples[i]);
        EXPECT_EQ(alone.reused_tokens(), 0u);
        ASSERT_EQ(reusing.targets(), examples[i].target_count);
        EXPECT_EQ(reusing.ids, fresh.ids);
        EXPECT_EQ(reusing.probs, fresh.probs);  // bit for bit: the same chunks over the same keys/values
        EXPECT_EQ(reusing.residual, fresh.residual);
        forwarded += examples[i].teacher_positions.back() + 1;
    }
    EXPECT_EQ(in_order.reused_tokens(), 3u * 16u);
    EXPECT_EQ(in_order.forwarded_tokens(), forwarded - 3u * 16u);
}

// Two ranks as two threads of this process: a sum adds both ranks' values in rank order.
struct RankPair {
    std::barrier<> meet{2};
    std::vector<double> published[2];
};

class PairRank final : public dist::Communicator {
public:
    PairRank(RankPair& pair, int rank) : pair_(pair), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return 2; }
    std::string backend() const override { return "thread pair"; }
    void all_reduce_sum(std::span<float> values) override { sum(values); }
    void all_reduce_sum(std::span<double> values) override { sum(values); }
    void broadcast(std::span<std::uint8_t>, int) override { fail("the thread pair does not broadcast"); }
    void barrier() override { pair_.meet.arrive_and_wait(); }
    [[noreturn]] void abort_job(const std::string& message) override { fail("{}", message); }

private:
    template <typename T>
    void sum(std::span<T> values) {
        pair_.published[rank_].assign(values.begin(), values.end());  // exact: float and int32 fit a double
        pair_.meet.arrive_and_wait();
        for (std::size_t i = 0; i < values.size(); ++i)
            values[i] = static_cast<T>(pair_.published[0][i]) + static_cast<T>(pair_.published[1][i]);
        pair_.meet.arrive_and_wait();
    }
    RankPair& pair_;
    int rank_;
};

TEST(SafetyTeacher, RanksShareWhatEachComputed) {
    // Four different conversations (another second token each); rank 0's rows hold examples 0 and
    // 2, rank 1's hold 1 and 3.
    std::vector<TokenizedExample> examples;
    for (std::int32_t i = 0; i < 4; ++i) {
        TokenizedExample example = example_with_teacher();
        example.tokens[1] = example.teacher_tokens[4] = 12 + i;
        examples.push_back(example);
    }
    const std::vector<std::size_t> fresh{0, 1, 2, 3};
    const std::vector<int> owners{0, 1, 0, 1};
    SafetyTeacher one_process(tiny(), 2.0f, 4), rank0(tiny(), 2.0f, 4), rank1(tiny(), 2.0f, 4);
    for (std::size_t i = 0; i < 4; ++i) (owners[i] == 0 ? rank0 : rank1).targets(i, examples[i]);

    RankPair pair;
    PairRank first(pair, 0), second(pair, 1);
    std::thread other([&] { rank1.share(fresh, owners, examples, DataParallel(&second)); });
    rank0.share(fresh, owners, examples, DataParallel(&first));
    other.join();

    for (SafetyTeacher* rank : {&rank0, &rank1}) {
        EXPECT_EQ(rank->computed_examples(), 2u);
        EXPECT_EQ(rank->cached_examples(), 4u);
        EXPECT_EQ(rank->cached_bytes(), 4 * examples[0].target_count * (4 * 8 + 4));
        for (std::size_t i = 0; i < 4; ++i) {
            SCOPED_TRACE(i);
            // cached(): targets() returns the shared copy and computes nothing.
            const TeacherTargets& shared = rank->targets(i, examples[i]);
            const TeacherTargets& computed = one_process.targets(i, examples[i]);
            EXPECT_EQ(shared.ids, computed.ids);
            EXPECT_EQ(shared.probs, computed.probs);  // bit for bit: the owner's values plus zeros
            EXPECT_EQ(shared.residual, computed.residual);
        }
        EXPECT_EQ(rank->computed_examples(), 2u);
    }
    EXPECT_NE(one_process.targets(0, examples[0]).probs, one_process.targets(1, examples[1]).probs);

    // An owner that has not computed its example is an error before any message is sent.
    SafetyTeacher idle(tiny(), 2.0f, 4);
    EXPECT_THROW(idle.share(fresh, owners, examples, DataParallel(&first)), Error);
}

TEST(SafetyTeacher, ExampleWithoutTargetsHasNoTeacherRows) {
    SafetyTeacher teacher(tiny(), 1.0f, 4);
    TokenizedExample emotion_only;
    emotion_only.tokens = {81, 12, 81, 5};
    emotion_only.targets.assign(4, kIgnoreTarget);
    const TeacherTargets& targets = teacher.targets(0, emotion_only);
    EXPECT_EQ(targets.targets(), 0u);
    EXPECT_TRUE(targets.ids.empty());
}

TEST(SafetyTeacher, BadSettingsAreErrors) {
    model::Decoder& base = tiny();
    EXPECT_THROW(SafetyTeacher(base, 0.0f, 4), Error);
    EXPECT_THROW(SafetyTeacher(base, -1.0f, 4), Error);
    EXPECT_THROW(SafetyTeacher(base, std::nanf(""), 4), Error);
    EXPECT_THROW(SafetyTeacher(base, 2.0f, 0), Error);
    EXPECT_THROW(SafetyTeacher(base, 2.0f, base.config().vocab_size + 1), Error);
    EXPECT_NO_THROW(SafetyTeacher(base, 2.0f, base.config().vocab_size));
    EXPECT_THROW(SafetyTeacher(base, 2.0f, 4, 0), Error);

    // The teacher is the frozen base: an attached adapter is refused.
    const model::LoraAdapters adapters(base.config(), model::LoraConfig{}, base.weights().qk_interleaved);
    base.attach_adapter(&adapters);
    EXPECT_THROW(SafetyTeacher(base, 2.0f, 4), Error);
    base.attach_adapter(nullptr);
}

// Misaligned teacher inputs name the example's line.
TEST(SafetyTeacher, MisalignedTeacherInputIsAnError) {
    SafetyTeacher teacher(tiny(), 2.0f, 4);
    auto expect_error = [&](const TokenizedExample& example, const char* needle) {
        try {
            teacher.targets(99, example);
            ADD_FAILURE() << "no Error for " << needle;
        } catch (const Error& e) {
            const std::string message = e.what();
            EXPECT_NE(message.find("line 17"), std::string::npos) << message;
            EXPECT_NE(message.find(needle), std::string::npos) << message;
        }
    };
    TokenizedExample no_teacher = example_with_teacher();
    no_teacher.teacher_tokens.clear();
    expect_error(no_teacher, "no teacher tokens");
    TokenizedExample short_positions = example_with_teacher();
    short_positions.teacher_positions.pop_back();
    expect_error(short_positions, "3 teacher positions for 4");
    TokenizedExample shifted = example_with_teacher();
    shifted.teacher_positions = {5, 6, 7, 8};  // off by one: other next tokens
    expect_error(shifted, "teacher target 0 is token");
    TokenizedExample outside = example_with_teacher();
    outside.teacher_positions.back() = 10;  // the last token has no next token
    expect_error(outside, "outside");
    EXPECT_EQ(teacher.cached_examples(), 0u);  // nothing cached from a failed example
}

TEST(SafetyTeacher, DefaultRulesCoverTheRequiredPoints) {
    const std::string rules = default_safety_rules();
    for (const char* point : {"diagnose", "medical, legal or financial", "crisis", "people", "professional help",
                              "harm themselves or others", "judge", "warm"})
        EXPECT_NE(rules.find(point), std::string::npos) << point;
}

}  // namespace
}  // namespace kindred::train
