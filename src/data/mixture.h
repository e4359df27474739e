// data/mixture.h — the temperature mixture over sources: p_i = n_i^α / Σ_j n_j^α with α in (0, 1]
// (α = 1 is proportional, smaller α flattens toward uniform). Draws are i.i.d. from one seeded
// 64-bit Mersenne Twister whose raw output (fixed by the standard) is turned into numbers here, so a
// seed gives the same stream on every platform. Streams have no epochs: a source whose examples run
// out starts a fresh seeded permutation of them.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace kindred::data {

// Throws Error unless 0 < alpha <= 1, every count is finite and at least one is positive.
std::vector<double> mixture_probabilities(const std::vector<std::size_t>& counts, double alpha);

// Uniform integer in [0, bound) from raw engine output, by rejection (no modulo bias).
std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound);

class Mixture {
public:
    Mixture(const std::vector<std::size_t>& counts, double alpha, std::uint64_t seed);
    const std::vector<double>& probabilities() const { return probabilities_; }
    std::size_t next_source();  // the source of the next draw

private:
    std::vector<double> probabilities_;
    std::vector<double> cumulative_;
    std::mt19937_64 rng_;
};

// An endless walk through one source's n examples: each pass is a fresh permutation drawn from
// (seed, source, pass), so every example appears once per pass and passes differ.
class SourceCycle {
public:
    SourceCycle(std::size_t count, std::uint64_t seed, std::uint64_t source);
    std::size_t next();  // index of the next example
    std::uint64_t passes_started() const { return pass_; }

private:
    void reshuffle();
    std::vector<std::uint32_t> order_;
    std::size_t position_ = 0;
    std::uint64_t seed_;
    std::uint64_t source_;
    std::uint64_t pass_ = 0;
};

}  // namespace kindred::data
