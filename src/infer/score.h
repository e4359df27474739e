// infer/score.h — how well a model predicts a text: mean negative log-likelihood per predicted
// token and perplexity, as transformers computes them with labels = input_ids (token i is
// predicted from tokens 0..i-1; the first token is context only). Callers pass the ids they want
// scored; `kindred score` prepends nothing, matching tools/goldens/inference.py.
//
// Texts longer than the window are scored in overlapping windows with a stride of half the window
// (the "sliding window" of the HF perplexity guide): every window starts from an empty cache, and
// each token is scored once, in the first window that contains it after the window's first half
// (in the very first window, every token but the first), so every scored token sees at least
// window/2 tokens of context except near the start of the text.
#pragma once

#include <cstdint>
#include <span>

#include "model/decoder.h"

namespace kindred::infer {

struct ScoreResult {
    std::int64_t tokens = 0;     // ids given
    std::int64_t predicted = 0;  // ids scored (tokens - 1)
    std::int64_t windows = 0;
    double mean_nll = 0.0;       // natural log
    double perplexity = 0.0;     // exp(mean_nll)
};

// `window` tokens per window (0 = the model's context length). Fewer than two ids is an Error.
ScoreResult score_tokens(model::Decoder& decoder, std::span<const std::int32_t> ids, std::int64_t window = 0);

}  // namespace kindred::infer
