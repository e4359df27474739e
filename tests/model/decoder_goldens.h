// tests/model/decoder_goldens.h — what the decoder tests share to replay transformers goldens:
// greedy decoding through the KV cache, the mean NLL of a text from its logits, and a golden's
// documents packed into one training row.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/softmax.h"
#include "model/decoder.h"
#include "model/trainable_decoder.h"

namespace kindred::model {

// `count` greedy tokens after `prompt`, one decode step per token (none after the last).
inline std::vector<std::int32_t> greedy_tokens(Decoder& decoder, const std::vector<std::int32_t>& prompt,
                                               std::size_t count, std::int64_t cache_capacity) {
    const std::int64_t vocab = decoder.config().vocab_size;
    std::vector<float> logits(static_cast<std::size_t>(vocab));
    KvCache cache(decoder.config(), cache_capacity);
    decoder.forward(prompt, cache, logits);
    std::vector<std::int32_t> generated;
    for (std::size_t i = 0; i < count; ++i) {
        const auto next = static_cast<std::int32_t>(kernels::argmax(logits.data(), vocab));
        generated.push_back(next);
        if (i + 1 < count) decoder.forward(std::span(&next, 1), cache, logits);
    }
    return generated;
}

// Mean over t < n−1 of −log softmax(logits[t])[ids[t + 1]], in double; logits [n x vocab].
inline double mean_nll(const std::vector<float>& logits, const std::vector<std::int32_t>& ids, std::int64_t vocab) {
    double nll = 0.0;
    for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
        const float* row = logits.data() + t * static_cast<std::size_t>(vocab);
        double max_logit = row[0], sum = 0.0;
        for (std::int64_t i = 0; i < vocab; ++i) max_logit = std::max<double>(max_logit, row[i]);
        for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - max_logit);
        nll += max_logit + std::log(sum) - row[ids[t + 1]];
    }
    return nll / static_cast<double>(ids.size() - 1);
}

// The documents of a golden packed into one row: positions restart and segment ids count up.
inline TrainBatch pack(const nlohmann::json& documents) {
    TrainBatch batch;
    std::int32_t segment = 0;
    for (const auto& doc : documents) {
        const auto tokens = doc["tokens"].get<std::vector<std::int32_t>>();
        const auto targets = doc["targets"].get<std::vector<std::int32_t>>();
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            batch.tokens.push_back(tokens[i]);
            batch.targets.push_back(targets[i]);
            batch.positions.push_back(static_cast<std::int32_t>(i));
            batch.segment_ids.push_back(segment);
        }
        ++segment;
    }
    return batch;
}

}  // namespace kindred::model
