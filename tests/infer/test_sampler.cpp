// Each sampler on hand-made logits against values computed by hand (comments show the arithmetic),
// the order of the chain, parameter validation and seed determinism.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "infer/sampler.h"

namespace kindred::infer {
namespace {

// Float softmax of a handful of values: agreement to 1e-6 (a few float ulps at these magnitudes).
constexpr float kProbTolerance = 1e-6f;

SamplingParams plain(float temperature = 1.0f) {
    SamplingParams params;
    params.temperature = temperature;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    return params;
}

std::vector<std::int32_t> ids_of(const std::vector<Sampler::Candidate>& candidates) {
    std::vector<std::int32_t> ids;
    for (const auto& c : candidates) ids.push_back(c.id);
    return ids;
}

// The sampler without top-p and min-p, written out plainly: every token of the top k (all when
// k = 0) sorted by descending logit (lower id first), softmax at T in float with a double total,
// one uniform draw whenever more than one token is a candidate, the walk down the cumulative mass.
class PlainSampler {
public:
    PlainSampler(float temperature, std::int32_t top_k, std::uint64_t seed) : temperature_(temperature), top_k_(top_k), rng_(seed) {}

    std::int32_t sample(const std::vector<float>& logits) {
        std::vector<std::int32_t> order(logits.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        if (top_k_ > 0 && static_cast<std::size_t>(top_k_) < order.size()) order.resize(static_cast<std::size_t>(top_k_));
        if (order.size() == 1) return order.front();
        std::vector<float> probs;
        double total = 0.0;
        for (const std::int32_t id : order) {
            probs.push_back(std::exp((logits[id] - logits[order.front()]) * (1.0f / temperature_)));
            total += probs.back();
        }
        for (float& p : probs) p = static_cast<float>(p / total);
        const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
        double mass = 0.0;
        for (std::size_t i = 0; i < order.size(); ++i) {
            mass += probs[i];
            if (u < mass) return order[i];
        }
        return order.back();
    }

private:
    float temperature_;
    std::int32_t top_k_;
    std::mt19937_64 rng_;
};

TEST(Sampler, LeavingOutZeroWeightTokensChangesNoDraw) {
    // A 4096-token vocabulary, drawn from alternately with spread-out logits (a tie at the top) and
    // with one logit far above the rest: at T = 0.01 nearly every token's weight underflows to 0
    // and is left out before the sort, and on the peaked logits a single token survives. The
    // draws, and the random stream (which advances on every draw among several candidates, zero
    // weights included), must be exactly the plain sampler's.
    std::mt19937 make(5);
    std::normal_distribution<float> spread(0.0f, 4.0f);
    std::vector<float> flat(4096), peaked(4096);
    for (float& z : flat) z = spread(make);
    flat[17] = flat[2000] = *std::max_element(flat.begin(), flat.end());
    for (float& z : peaked) z = spread(make);
    peaked[123] = *std::max_element(peaked.begin(), peaked.end()) + 30.0f;
    for (const float temperature : {0.01f, 0.05f, 0.3f, 1.0f}) {
        for (const std::int32_t top_k : {0, 40, 1}) {
            SCOPED_TRACE(testing::Message() << "T " << temperature << ", top-k " << top_k);
            SamplingParams params = plain(temperature);
            params.top_k = top_k;
            params.seed = 99;
            Sampler sampler(params, static_cast<std::int64_t>(flat.size()));
            PlainSampler reference(temperature, top_k, 99);
            std::vector<std::int32_t> drawn, expected;
            for (int d = 0; d < 200; ++d) {
                const std::vector<float>& logits = d % 2 == 0 ? peaked : flat;
                drawn.push_back(sampler.sample(logits, {}));
                expected.push_back(reference.sample(logits));
            }
            EXPECT_EQ(drawn, expected);
        }
    }
}

TEST(Sampler, GreedyPicksArgmaxAndLowestIdOnTies) {
    Sampler sampler(plain(0.0f), 5);
    const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
    EXPECT_EQ(sampler.sample(logits, {}), 1);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
    SamplingParams params = plain();
    params.repeat_penalty = 2.0f;
    Sampler sampler(params, 4);
    std::vector<float> logits = {3.0f, -1.0f, 0.5f, 4.0f};
    const std::vector<std::int32_t> history = {0, 1, 0};  // token 0 twice: still penalised once
    sampler.apply_biases_and_penalties(logits, history);
    EXPECT_FLOAT_EQ(logits[0], 1.5f);   // 3 / 2
    EXPECT_FLOAT_EQ(logits[1], -2.0f);  // -1 * 2
    EXPECT_FLOAT_EQ(logits[2], 0.5f);   // unseen
    EXPECT_FLOAT_EQ(logits[3], 4.0f);   // unseen
}

TEST(Sampler, RepetitionWindowCoversOnlyTheLastTokens) {
    SamplingParams params = plain();
    params.repeat_penalty = 2.0f;
    params.repeat_last_n = 2;
    Sampler sampler(params, 4);
    std::vector<float> logits = {2.0f, 2.0f, 2.0f, 2.0f};
    const std::vector<std::int32_t> history = {0, 1, 2, 3};  // window = {2, 3}
    sampler.apply_biases_and_penalties(logits, history);
    EXPECT_EQ(logits, (std::vector<float>{2.0f, 2.0f, 1.0f, 1.0f}));
}

TEST(Sampler, PresenceAndFrequencyPenaltiesAsOpenAI) {
    SamplingParams params = plain();
    params.presence_penalty = 0.5f;
    params.frequency_penalty = 0.25f;
    params.repeat_last_n = -1;
    Sampler sampler(params, 3);
    std::vector<float> logits = {1.0f, 1.0f, 1.0f};
    const std::vector<std::int32_t> history = {2, 0, 2, 2};
    sampler.apply_biases_and_penalties(logits, history);
    EXPECT_FLOAT_EQ(logits[0], 0.25f);   // 1 - 1*0.25 - 0.5
    EXPECT_FLOAT_EQ(logits[1], 1.0f);    // unseen
    EXPECT_FLOAT_EQ(logits[2], -0.25f);  // 1 - 3*0.25 - 0.5
}

TEST(Sampler, LogitBiasAddsAndMinusInfinityBans) {
    SamplingParams params = plain(0.0f);
    params.logit_bias = {{0, -INFINITY}, {2, 1.5f}};
    Sampler sampler(params, 3);
    const std::vector<float> logits = {5.0f, 1.0f, 0.0f};
    // 0 is banned; 2 becomes 1.5 > 1.
    EXPECT_EQ(sampler.sample(logits, {}), 2);
}

TEST(Sampler, TemperatureScalesTheSoftmax) {
    Sampler sampler(plain(0.5f), 2);
    const std::vector<float> logits = {std::log(3.0f), 0.0f};
    // logits / 0.5 = {2 ln 3, 0}: probabilities 9/10 and 1/10.
    const auto& dist = sampler.distribution(logits, {});
    ASSERT_EQ(dist.size(), 2u);
    EXPECT_EQ(dist[0].id, 0);
    EXPECT_NEAR(dist[0].prob, 0.9f, kProbTolerance);
    EXPECT_NEAR(dist[1].prob, 0.1f, kProbTolerance);
}

TEST(Sampler, TopKKeepsTheKLargest) {
    SamplingParams params = plain();
    params.top_k = 2;
    Sampler sampler(params, 4);
    const std::vector<float> logits = {0.0f, std::log(3.0f), -5.0f, 0.0f};
    // Largest: id 1 (ln 3), then ids 0 and 3 tie at 0 -> the lower id, 0. Renormalised: 3/4, 1/4.
    const auto& dist = sampler.distribution(logits, {});
    EXPECT_EQ(ids_of(dist), (std::vector<std::int32_t>{1, 0}));
    EXPECT_NEAR(dist[0].prob, 0.75f, kProbTolerance);
    EXPECT_NEAR(dist[1].prob, 0.25f, kProbTolerance);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
    SamplingParams params = plain();
    // Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs).
    const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
    // Thresholds stay clear of exact sums, where float rounding would decide.
    params.top_p = 0.79f;  // 0.5 + 0.3 = 0.8 reaches it: keep {1, 3}, renormalised 0.625 / 0.375
    Sampler at_boundary(params, 4);
    const auto& two = at_boundary.distribution(logits, {});
    EXPECT_EQ(ids_of(two), (std::vector<std::int32_t>{1, 3}));
    EXPECT_NEAR(two[0].prob, 0.625f, kProbTolerance);
    params.top_p = 0.81f;  // needs the third token
    Sampler past(params, 4);
    EXPECT_EQ(ids_of(past.distribution(logits, {})), (std::vector<std::int32_t>{1, 3, 0}));
    params.top_p = 0.1f;  // the first token alone exceeds it
    Sampler small(params, 4);
    EXPECT_EQ(ids_of(small.distribution(logits, {})), (std::vector<std::int32_t>{1}));
}

TEST(Sampler, MinPIsRelativeToTheLargestProbability) {
    SamplingParams params = plain();
    params.min_p = 0.25f;
    Sampler sampler(params, 4);
    // Probabilities 0.5, 0.3, 0.15, 0.05: threshold 0.25 * 0.5 = 0.125 keeps three.
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    const auto& dist = sampler.distribution(logits, {});
    EXPECT_EQ(ids_of(dist), (std::vector<std::int32_t>{0, 1, 2}));
    EXPECT_NEAR(dist[2].prob, 0.15f / 0.95f, kProbTolerance);
}

TEST(Sampler, TruncationUsesProbabilitiesBeforeTemperature) {
    // At T = 1 the probabilities are 0.5, 0.3, 0.2 and top-p 0.75 keeps two tokens. Applying
    // T = 0.1 first (HF order) would give the first token ~0.99 and keep only it.
    SamplingParams params = plain(0.1f);
    params.top_p = 0.75f;
    Sampler sampler(params, 3);
    const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    const auto& dist = sampler.distribution(logits, {});
    ASSERT_EQ(ids_of(dist), (std::vector<std::int32_t>{0, 1}));
    // Then temperature: weights 0.5^10 and 0.3^10, normalised.
    const double a = std::pow(0.5, 10.0), b = std::pow(0.3, 10.0);
    EXPECT_NEAR(dist[0].prob, a / (a + b), kProbTolerance);
}

TEST(Sampler, PenaltiesComeBeforeTruncation) {
    SamplingParams params = plain();
    params.top_k = 1;
    params.repeat_penalty = 4.0f;
    Sampler sampler(params, 2);
    const std::vector<float> logits = {2.0f, 1.0f};  // token 0 seen: 2 / 4 = 0.5 < 1
    const std::vector<std::int32_t> history = {0};
    EXPECT_EQ(sampler.sample(logits, history), 1);
}

TEST(Sampler, SameSeedSameDrawsAndDrawsFollowTheDistribution) {
    SamplingParams params = plain();
    params.seed = 1234;
    const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
    Sampler first(params, 2), second(params, 2);
    int ones = 0;
    constexpr int kDraws = 4000;
    for (int i = 0; i < kDraws; ++i) {
        const std::int32_t a = first.sample(logits, {});
        ASSERT_EQ(a, second.sample(logits, {}));
        ones += a;
    }
    // Binomial(4000, 0.75): sd = sqrt(4000 * 0.75 * 0.25) ~ 27; allow 5 sd.
    EXPECT_NEAR(ones, 3000, 5 * 27);
    params.seed = 1235;
    Sampler other(params, 2);
    int differing = 0;
    Sampler again(SamplingParams{first.params()}, 2);
    for (int i = 0; i < 64; ++i) differing += other.sample(logits, {}) != again.sample(logits, {});
    EXPECT_GT(differing, 0);
}

TEST(Sampler, InvalidParametersAreErrors) {
    const auto rejects = [](auto mutate) {
        SamplingParams params;
        mutate(params);
        EXPECT_THROW(Sampler(params, 10), Error);
    };
    rejects([](SamplingParams& p) { p.temperature = -0.1f; });
    rejects([](SamplingParams& p) { p.temperature = NAN; });
    rejects([](SamplingParams& p) { p.top_p = 0.0f; });
    rejects([](SamplingParams& p) { p.top_p = 1.5f; });
    rejects([](SamplingParams& p) { p.min_p = -0.1f; });
    rejects([](SamplingParams& p) { p.min_p = 2.0f; });
    rejects([](SamplingParams& p) { p.top_k = -1; });
    rejects([](SamplingParams& p) { p.repeat_penalty = 0.0f; });
    rejects([](SamplingParams& p) { p.repeat_last_n = -2; });
    rejects([](SamplingParams& p) { p.logit_bias = {{10, 1.0f}}; });
    rejects([](SamplingParams& p) { p.logit_bias = {{1, INFINITY}}; });
    Sampler sampler(plain(), 3);
    EXPECT_THROW(sampler.sample(std::vector<float>{1.0f, 2.0f}, {}), Error);  // wrong size
    const std::vector<float> banned = {-INFINITY, -INFINITY, -INFINITY};
    EXPECT_THROW(sampler.sample(banned, {}), Error);
}

}  // namespace
}  // namespace kindred::infer
