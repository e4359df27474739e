// The temperature mixture, the hash split and the style tokens.
#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/mixture.h"
#include "data/split.h"
#include "data/style.h"

namespace kindred::data {
namespace {

TEST(Mixture, ProbabilitiesFollowTheTemperatureFormula) {
    const std::vector<std::size_t> counts{19533, 1040, 43410};
    for (const double alpha : {1.0, 0.5, 0.3}) {
        const auto p = mixture_probabilities(counts, alpha);
        double total = 0.0;
        for (const auto c : counts) total += std::pow(static_cast<double>(c), alpha);
        for (std::size_t i = 0; i < counts.size(); ++i) {
            // Same formula, same operations up to summation order: a few ulps.
            EXPECT_NEAR(p[i], std::pow(static_cast<double>(counts[i]), alpha) / total, 1e-15);
        }
    }
    EXPECT_NEAR(mixture_probabilities({1, 3}, 1.0)[0], 0.25, 1e-15);
    EXPECT_EQ(mixture_probabilities({0, 5}, 0.5)[0], 0.0);
}

TEST(Mixture, AlphaOutsideTheIntervalAndEmptyMixturesAreRejected) {
    for (const double alpha : {0.0, -0.5, 1.0001, std::nan("")}) EXPECT_THROW(mixture_probabilities({1, 2}, alpha), Error);
    EXPECT_THROW(mixture_probabilities({0, 0}, 0.5), Error);
    EXPECT_THROW(mixture_probabilities({}, 0.5), Error);
}

TEST(Mixture, EmpiricalProportionsMatchWithinFiveBinomialStandardDeviations) {
    const std::vector<std::size_t> counts{19533, 1040, 43410};
    constexpr std::size_t kDraws = 200000;
    for (const std::uint64_t seed : {0ULL, 1ULL, 12345ULL}) {
        Mixture mixture(counts, 0.5, seed);
        std::vector<std::size_t> hits(counts.size(), 0);
        for (std::size_t i = 0; i < kDraws; ++i) ++hits[mixture.next_source()];
        for (std::size_t i = 0; i < counts.size(); ++i) {
            const double p = mixture.probabilities()[i];
            // Each count is Binomial(N, p): sd = sqrt(N p (1-p)). Five sd bounds a false alarm at
            // about 6e-7 per check, so the test only fails for a biased sampler.
            const double sd = std::sqrt(static_cast<double>(kDraws) * p * (1.0 - p));
            EXPECT_NEAR(static_cast<double>(hits[i]), static_cast<double>(kDraws) * p, 5.0 * sd) << "source " << i << " seed " << seed;
        }
    }
}

TEST(Mixture, SameSeedSameStreamOtherSeedOtherStream) {
    Mixture a({10, 20, 30}, 0.7, 42), b({10, 20, 30}, 0.7, 42), c({10, 20, 30}, 0.7, 43);
    std::size_t differences = 0;
    for (int i = 0; i < 1000; ++i) {
        const auto x = a.next_source();
        EXPECT_EQ(x, b.next_source());
        differences += x != c.next_source() ? 1 : 0;
    }
    EXPECT_GT(differences, 100u);
}

TEST(Mixture, ZeroWeightSourcesAreNeverDrawn) {
    Mixture mixture({0, 7, 0}, 1.0, 3);
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(mixture.next_source(), 1u);
}

TEST(SourceCycle, EachPassIsAPermutationAndPassesDiffer) {
    SourceCycle cycle(50, 9, 1);
    std::vector<std::size_t> first, second;
    for (int i = 0; i < 50; ++i) first.push_back(cycle.next());
    for (int i = 0; i < 50; ++i) second.push_back(cycle.next());
    EXPECT_EQ(std::set<std::size_t>(first.begin(), first.end()).size(), 50u);
    EXPECT_EQ(std::set<std::size_t>(second.begin(), second.end()).size(), 50u);
    EXPECT_NE(first, second);
    EXPECT_EQ(cycle.passes_started(), 2u);
    SourceCycle again(50, 9, 1);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(again.next(), first[static_cast<std::size_t>(i)]);
    EXPECT_THROW(SourceCycle(0, 1, 1), Error);
}

TEST(UniformBelow, StaysInRange) {
    std::mt19937_64 rng(5);
    for (std::uint64_t bound : {1ULL, 2ULL, 3ULL, 1000ULL, (1ULL << 63) + 1}) {
        for (int i = 0; i < 100; ++i) EXPECT_LT(uniform_below(rng, bound), bound);
    }
}

TEST(Split, Fnv1aKnownVectors) {
    // Reference values of 64-bit FNV-1a (Fowler/Noll/Vo test suite).
    EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
    EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
    EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(Split, HashSplitIsDeterministicAndRoughlyEightyTenTen) {
    std::size_t train = 0, dev = 0, test = 0;
    for (int i = 0; i < 10000; ++i) {
        const auto id = "esconv:" + std::to_string(i);
        const auto split = hash_split(id);
        EXPECT_EQ(split, hash_split(id));
        train += split == "train";
        dev += split == "dev";
        test += split == "test";
    }
    // Binomial(10000, 0.1): sd 30; five sd = 150.
    EXPECT_NEAR(static_cast<double>(dev), 1000.0, 150.0);
    EXPECT_NEAR(static_cast<double>(test), 1000.0, 150.0);
    EXPECT_EQ(train + dev + test, 10000u);
}

TEST(Style, ValidTagsArePlacedAsPlainText) {
    const auto style = parse_style_tokens("<tone:warm><persona:best_friend>", StylePlacement::Assistant);
    Example example;
    example.messages = {make_message(Role::System, "sys"), make_message(Role::User, "hi"),
                        make_message(Role::Assistant, "hello", true), make_message(Role::Assistant, "untargeted", false)};
    apply_style(example, style);
    EXPECT_EQ(example.messages[0].content, "sys");
    EXPECT_EQ(example.messages[2].content, "<tone:warm><persona:best_friend> hello");
    EXPECT_EQ(example.messages[2].prefix_chars, std::string("<tone:warm><persona:best_friend> ").size());
    EXPECT_EQ(example.messages[3].content, "untargeted");

    Example system_example;
    system_example.messages = {make_message(Role::System, "sys"), make_message(Role::Assistant, "a", true)};
    apply_style(system_example, parse_style_tokens("<tone:warm>", StylePlacement::System));
    EXPECT_EQ(system_example.messages[0].content, "<tone:warm> sys");
    EXPECT_EQ(system_example.messages[1].content, "a");
}

TEST(Style, MalformedTagsAndPlacementsAreRejected) {
    for (const char* bad : {"", "tone:warm", "<tone:warm", "<tone>", "<Tone:warm>", "<tone:warm> <x:y>", "<:warm>", "<tone:>"}) {
        EXPECT_THROW(parse_style_tokens(bad, StylePlacement::System), Error) << bad;
    }
    EXPECT_EQ(parse_style_placement("assistant"), StylePlacement::Assistant);
    EXPECT_THROW(parse_style_placement("user"), Error);
}

}  // namespace
}  // namespace kindred::data
