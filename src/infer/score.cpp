#include "infer/score.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/kv_cache.h"

namespace kindred::infer {
namespace {

// Positions per forward call: all-position logits take chunk x vocab floats (64 x 49152 x 4 B =
// 12.6 MB for SmolLM2), which bounds memory however long the window is.
constexpr std::int64_t kScoreChunk = 64;

// -log softmax(row)[target], in double so that long sums stay exact to well below the tolerance.
double token_nll(std::span<const float> row, std::int32_t target) {
    const float top = *std::max_element(row.begin(), row.end());
    double total = 0.0;
    for (const float logit : row) total += std::exp(static_cast<double>(logit - top));
    return std::log(total) - static_cast<double>(row[static_cast<std::size_t>(target)] - top);
}

}  // namespace

ScoreResult score_tokens(model::Decoder& decoder, std::span<const std::int32_t> ids, std::int64_t window) {
    const auto& config = decoder.config();
    const auto n = static_cast<std::int64_t>(ids.size());
    if (n < 2) fail("score: need at least 2 tokens to predict one, got {}", n);
    if (window == 0) window = config.context_length;
    if (window < 2 || window > config.context_length) {
        fail("score: window must be in [2, {}] (the model's context), got {}", config.context_length, window);
    }
    for (std::int64_t i = 0; i < n; ++i) {
        if (ids[static_cast<std::size_t>(i)] < 0 || ids[static_cast<std::size_t>(i)] >= config.vocab_size) {
            fail("score: token {} (id {}) is outside the model's vocabulary [0, {})", i, ids[static_cast<std::size_t>(i)],
                 config.vocab_size);
        }
    }
    window = std::min(window, n);
    const std::int64_t stride = std::max<std::int64_t>(1, window / 2);
    const auto vocab = static_cast<std::size_t>(config.vocab_size);

    model::KvCache cache = decoder.kv_cache(window);
    std::vector<float> logits(static_cast<std::size_t>(std::min(kScoreChunk, window)) * vocab);
    ScoreResult result;
    result.tokens = n;
    double nll_sum = 0.0;
    std::int64_t scored_until = 1;  // targets [1, scored_until) are done
    for (std::int64_t begin = 0; scored_until < n; begin += stride) {
        const std::int64_t end = std::min(begin + window, n);
        cache.clear();
        ++result.windows;
        // Position p's logits predict token p + 1; feed [begin, end - 1) and score targets
        // [max(scored_until, begin + 1), end).
        for (std::int64_t chunk = begin; chunk < end - 1; chunk += kScoreChunk) {
            const std::int64_t chunk_end = std::min(chunk + kScoreChunk, end - 1);
            const auto count = static_cast<std::size_t>(chunk_end - chunk);
            decoder.forward(ids.subspan(static_cast<std::size_t>(chunk), count), cache,
                            std::span<float>(logits).first(count * vocab), /*all_logits=*/true);
            for (std::int64_t p = chunk; p < chunk_end; ++p) {
                const std::int64_t target = p + 1;
                if (target < scored_until) continue;
                const auto row = std::span<const float>(logits).subspan(static_cast<std::size_t>(p - chunk) * vocab, vocab);
                nll_sum += token_nll(row, ids[static_cast<std::size_t>(target)]);
                ++result.predicted;
            }
        }
        scored_until = end;
    }
    result.mean_nll = nll_sum / static_cast<double>(result.predicted);
    result.perplexity = std::exp(result.mean_nll);
    return result;
}

}  // namespace kindred::infer
