#include "data/mixture.h"

#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace kindred::data {
namespace {

// 53 random bits -> [0, 1): exact in a double and identical everywhere (unlike std:: distributions).
double unit_interval(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// SplitMix64 finaliser: decorrelates the seeds of per-source, per-pass generators.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace

std::vector<double> mixture_probabilities(const std::vector<std::size_t>& counts, double alpha) {
    if (!(alpha > 0.0 && alpha <= 1.0)) fail("mixture alpha {} is outside (0, 1]", alpha);
    std::vector<double> weights;
    for (const auto count : counts) weights.push_back(count == 0 ? 0.0 : std::pow(static_cast<double>(count), alpha));
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    if (!(total > 0.0)) fail("mixture has no training examples in any source");
    for (auto& weight : weights) weight /= total;
    return weights;
}

std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound) {
    // Reject the top partial block of the 64-bit range so every residue is equally likely.
    const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
    for (;;) {
        const std::uint64_t value = rng();
        if (value < limit) return value % bound;
    }
}

Mixture::Mixture(const std::vector<std::size_t>& counts, double alpha, std::uint64_t seed)
    : probabilities_(mixture_probabilities(counts, alpha)), rng_(mix(seed)) {
    double sum = 0.0;
    for (const auto p : probabilities_) cumulative_.push_back(sum += p);
}

std::size_t Mixture::next_source() {
    const double u = unit_interval(rng_) * cumulative_.back();
    for (std::size_t i = 0; i < cumulative_.size(); ++i) {
        if (u < cumulative_[i] && probabilities_[i] > 0.0) return i;
    }
    // u rounds to the total only when the last positive weight is hit; return that source.
    for (std::size_t i = cumulative_.size(); i-- > 0;) {
        if (probabilities_[i] > 0.0) return i;
    }
    return 0;
}

SourceCycle::SourceCycle(std::size_t count, std::uint64_t seed, std::uint64_t source) : seed_(seed), source_(source) {
    if (count == 0) fail("cannot cycle through a source with no examples");
    if (count > std::numeric_limits<std::uint32_t>::max()) fail("source has {} examples; at most 2^32-1 are supported", count);
    order_.resize(count);
    position_ = count;  // the first next() starts pass 1
}

void SourceCycle::reshuffle() {
    std::iota(order_.begin(), order_.end(), 0U);
    std::mt19937_64 rng(mix(seed_ ^ mix(source_ * 0x100000001b3ULL + pass_)));
    for (std::size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
        const auto j = static_cast<std::size_t>(uniform_below(rng, i));
        std::swap(order_[i - 1], order_[j]);
    }
    ++pass_;
    position_ = 0;
}

std::size_t SourceCycle::next() {
    if (position_ == order_.size()) reshuffle();
    return order_[position_++];
}

}  // namespace kindred::data
