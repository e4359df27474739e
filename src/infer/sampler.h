// infer/sampler.h — turns one row of logits into the next token id.
//
// Semantics follow llama.cpp's sampler chain (and agree with HF/OpenAI where those define a
// sampler), applied in this fixed order:
//   1. logit bias        logit[id] += bias                                   (OpenAI logit_bias)
//   2. repetition        over the last `repeat_last_n` tokens of the history, each distinct seen
//                        token's logit is divided by `repeat_penalty` when positive and multiplied
//                        by it when negative (CTRL paper; HF and llama.cpp)
//   3. presence/frequency  logit -= count * frequency_penalty + (count > 0) * presence_penalty,
//                        counts over the same window (OpenAI; llama.cpp)
//   4. temperature == 0  greedy: argmax (lowest id wins a tie); nothing below runs
//   5. top-k             keep the k largest logits (0 = off)
//   6. top-p             keep the smallest prefix, by descending probability, whose mass >= top_p
//   7. min-p             keep tokens whose probability >= min_p * (largest probability)
//   8. temperature       divide the surviving logits by T, softmax, draw one
// Steps 6 and 7 use probabilities before temperature, as llama.cpp does (HF applies temperature
// first); each truncation always keeps at least one token. Draws come from std::mt19937_64 and a
// 53-bit mantissa conversion written here, so a seed gives the same tokens on every platform.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace kindred::infer {

struct SamplingParams {
    float temperature = 0.8f;       // 0 = greedy
    std::int32_t top_k = 40;        // 0 = off
    float top_p = 0.95f;            // (0, 1]; 1 = off
    float min_p = 0.05f;            // [0, 1]; 0 = off
    float repeat_penalty = 1.0f;    // > 0; 1 = off
    std::int32_t repeat_last_n = 64;  // window for steps 2 and 3; -1 = whole history, 0 = off
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    std::vector<std::pair<std::int32_t, float>> logit_bias;  // (token id, added to its logit)
    std::uint64_t seed = 0;

    // Throws Error naming the first invalid field (vocab_size bounds the logit_bias ids).
    void validate(std::int64_t vocab_size) const;
};

// The decoding Kindred recommends for replies people read (chat, generate, the controller, the
// report's side-by-side replies and safety sheet): settings chosen on the dev split against
// repetition loops and for the checker's properties, docs/controller.md ("Decoding") has the sweep.
// Greedy decoding stays where a test needs determinism.
SamplingParams recommended_sampling(std::uint64_t seed = 0);

class Sampler {
public:
    // Validates params against the vocabulary size.
    Sampler(SamplingParams params, std::int64_t vocab_size);

    struct Candidate {
        std::int32_t id;
        float logit;
        float prob;
    };

    // Picks a token from `logits` (size vocab_size); `history` holds the tokens seen so far
    // (prompt and generated) for the penalties. Does not modify the caller's logits.
    std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> history);

    // Steps 1-8 without the draw: the tokens that may be drawn, by descending probability, with
    // probabilities summing to 1 (greedy: the one argmax token with probability 1).
    const std::vector<Candidate>& distribution(std::span<const float> logits, std::span<const std::int32_t> history);

    // Steps 1-3 in place.
    void apply_biases_and_penalties(std::span<float> logits, std::span<const std::int32_t> history);

    const SamplingParams& params() const { return params_; }

private:
    double uniform();  // [0, 1)

    SamplingParams params_;
    std::int64_t vocab_size_;
    std::mt19937_64 rng_;
    std::vector<float> work_;  // penalised logits
    std::vector<Candidate> candidates_;
    std::size_t pruned_ = 0;  // candidates of the last distribution() left out for a zero weight
    std::vector<std::int32_t> counts_;  // per-token counts in the penalty window (sparse reset)
};

}  // namespace kindred::infer
