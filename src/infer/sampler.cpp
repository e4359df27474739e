#include "infer/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kindred::infer {

void SamplingParams::validate(std::int64_t vocab_size) const {
    if (!std::isfinite(temperature) || temperature < 0.0f) {
        fail("sampling: temperature must be a finite number >= 0 (0 = greedy), got {}", temperature);
    }
    if (top_k < 0) fail("sampling: top-k must be >= 0 (0 = off), got {}", top_k);
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail("sampling: top-p must be in (0, 1], got {}", top_p);
    if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("sampling: min-p must be in [0, 1], got {}", min_p);
    if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0.0f) {
        fail("sampling: repeat penalty must be a finite number > 0 (1 = off), got {}", repeat_penalty);
    }
    if (repeat_last_n < -1) fail("sampling: repeat-last-n must be >= -1 (-1 = whole history), got {}", repeat_last_n);
    if (!std::isfinite(presence_penalty)) fail("sampling: presence penalty must be finite, got {}", presence_penalty);
    if (!std::isfinite(frequency_penalty)) fail("sampling: frequency penalty must be finite, got {}", frequency_penalty);
    for (const auto& [id, bias] : logit_bias) {
        if (id < 0 || id >= vocab_size) fail("sampling: logit bias token id {} is outside the vocabulary [0, {})", id, vocab_size);
        // -inf bans a token; +inf or NaN would make the softmax meaningless.
        if (std::isnan(bias) || bias == INFINITY) fail("sampling: logit bias for token {} must be a number or -inf, got {}", id, bias);
    }
}

SamplingParams recommended_sampling(std::uint64_t seed) {
    SamplingParams params;
    params.temperature = 0.7f;
    params.top_k = 40;
    params.top_p = 0.9f;
    params.min_p = 0.05f;
    params.repeat_penalty = 1.15f;
    params.repeat_last_n = 128;
    params.seed = seed;
    return params;
}

Sampler::Sampler(SamplingParams params, std::int64_t vocab_size)
    : params_(std::move(params)), vocab_size_(vocab_size), rng_(params_.seed) {
    if (vocab_size <= 0) fail("sampling: vocabulary size must be positive, got {}", vocab_size);
    params_.validate(vocab_size);
    counts_.assign(static_cast<std::size_t>(vocab_size), 0);
}

void Sampler::apply_biases_and_penalties(std::span<float> logits, std::span<const std::int32_t> history) {
    for (const auto& [id, bias] : params_.logit_bias) logits[static_cast<std::size_t>(id)] += bias;

    const bool penalise = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                          params_.frequency_penalty != 0.0f;
    if (!penalise || params_.repeat_last_n == 0) return;
    std::size_t window = history.size();
    if (params_.repeat_last_n > 0) window = std::min(window, static_cast<std::size_t>(params_.repeat_last_n));
    const auto recent = history.last(window);
    for (const std::int32_t id : recent) {
        if (id < 0 || id >= vocab_size_) fail("sampling: history token id {} is outside the vocabulary [0, {})", id, vocab_size_);
    }
    for (const std::int32_t id : recent) ++counts_[static_cast<std::size_t>(id)];
    for (const std::int32_t id : recent) {
        std::int32_t& count = counts_[static_cast<std::size_t>(id)];
        if (count == 0) continue;  // a repeated id, already penalised once
        float& logit = logits[static_cast<std::size_t>(id)];
        logit = logit > 0.0f ? logit / params_.repeat_penalty : logit * params_.repeat_penalty;
        logit -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
        count = 0;  // also leaves counts_ all-zero for the next call
    }
}

const std::vector<Sampler::Candidate>& Sampler::distribution(std::span<const float> logits,
                                                             std::span<const std::int32_t> history) {
    if (static_cast<std::int64_t>(logits.size()) != vocab_size_) {
        fail("sampling: got {} logits for a vocabulary of {}", logits.size(), vocab_size_);
    }
    work_.assign(logits.begin(), logits.end());
    apply_biases_and_penalties(work_, history);

    // Descending logit, lower id first among equals, so every step below is deterministic.
    const auto before = [](const Candidate& a, const Candidate& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    candidates_.clear();
    pruned_ = 0;
    if (params_.temperature == 0.0f) {
        const auto best = std::max_element(work_.begin(), work_.end(), [](float a, float b) { return a < b; });
        candidates_.push_back({static_cast<std::int32_t>(best - work_.begin()), *best, 1.0f});
        if (!std::isfinite(*best)) fail("sampling: every logit is -inf or NaN");
        return candidates_;
    }

    // Without top-p and min-p (which read every survivor's probability at temperature 1) a token
    // whose weight at the sampling temperature, exp((logit - top) / T) in float as the last softmax
    // computes it, is 0 can never be drawn and adds exactly 0 to the total: it is left out before
    // the sort (at T = 0.01 that is nearly the whole vocabulary), which changes no probability and
    // no draw. The order is a strict total order, so a full std::sort gives partial_sort's order.
    const bool mass_filters = params_.top_p < 1.0f || params_.min_p > 0.0f;
    const float largest = *std::max_element(work_.begin(), work_.end(), [](float a, float b) { return a < b; });
    if (!std::isfinite(largest)) fail("sampling: every logit is -inf or NaN");
    const float inverse_t = 1.0f / params_.temperature;
    candidates_.reserve(work_.size());
    for (std::size_t i = 0; i < work_.size(); ++i) {
        if (!mass_filters && std::exp((work_[i] - largest) * inverse_t) == 0.0f) continue;
        candidates_.push_back({static_cast<std::int32_t>(i), work_[i], 0.0f});
    }
    const auto top_k = [&](std::size_t n) {
        return params_.top_k > 0 ? std::min(n, static_cast<std::size_t>(params_.top_k)) : n;
    };
    const std::size_t k = top_k(candidates_.size());
    pruned_ = top_k(work_.size()) - k;
    if (k == candidates_.size()) {
        std::sort(candidates_.begin(), candidates_.end(), before);
    } else {
        std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(k), candidates_.end(), before);
        candidates_.resize(k);
    }

    // Softmax over the survivors at temperature 1 (for top-p and min-p).
    const auto softmax = [this](float inverse_temperature) {
        const float top = candidates_.front().logit;
        double total = 0.0;
        for (auto& c : candidates_) {
            c.prob = std::exp((c.logit - top) * inverse_temperature);
            total += c.prob;
        }
        for (auto& c : candidates_) c.prob = static_cast<float>(c.prob / total);
    };
    if (mass_filters) softmax(1.0f);

    if (params_.top_p < 1.0f) {
        double mass = 0.0;
        std::size_t keep = candidates_.size();
        for (std::size_t i = 0; i < candidates_.size(); ++i) {
            mass += candidates_[i].prob;
            if (mass >= params_.top_p) {
                keep = i + 1;
                break;
            }
        }
        candidates_.resize(keep);
    }
    if (params_.min_p > 0.0f) {
        const float threshold = params_.min_p * candidates_.front().prob;
        std::size_t keep = 1;
        while (keep < candidates_.size() && candidates_[keep].prob >= threshold) ++keep;
        candidates_.resize(keep);
    }
    softmax(inverse_t);
    return candidates_;
}

double Sampler::uniform() {
    // The top 53 bits as a double in [0, 1): exact, and identical across standard libraries
    // (std::uniform_real_distribution is not).
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

std::int32_t Sampler::sample(std::span<const float> logits, std::span<const std::int32_t> history) {
    const auto& candidates = distribution(logits, history);
    // A draw is made whenever more than one token was a candidate, zero-weight ones included, so
    // leaving those out of the sort does not shift the random stream.
    if (candidates.size() + pruned_ == 1) return candidates.front().id;
    const double u = uniform();
    double mass = 0.0;
    for (const auto& c : candidates) {
        mass += c.prob;
        if (u < mass) return c.id;
    }
    return candidates.back().id;  // rounding left the total a hair under u
}

}  // namespace kindred::infer
