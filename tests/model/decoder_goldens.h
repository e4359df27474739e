// tests/model/decoder_goldens.h — what the decoder tests share to replay transformers and PEFT
// goldens: greedy decoding through the KV cache, the mean NLL of a text from its logits, a
// golden's documents packed into one training row; the LoRA goldens' init formula and the gradient
// error measure of tests/lora_goldens.h, in this namespace; the check that adapters from a first
// layer train what full ones do.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/softmax.h"
#include "lora_goldens.h"
#include "model/decoder.h"
#include "model/lora_adapters.h"
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

// Logits of every position of `ids` in one prefill [ids x vocab].
inline std::vector<float> all_logits(Decoder& decoder, const std::vector<std::int32_t>& ids) {
    KvCache cache(decoder.config(), static_cast<std::int64_t>(ids.size()));
    std::vector<float> logits(ids.size() * static_cast<std::size_t>(decoder.config().vocab_size));
    decoder.forward(ids, cache, logits, true);
    return logits;
}

// Largest |ours − golden| over every position and vocabulary entry of a [tokens x vocab] golden.
inline double worst_difference(const std::vector<float>& logits, const nlohmann::json& golden) {
    double worst = 0.0;
    std::size_t i = 0;
    for (const auto& row : golden)
        for (const auto& value : row) worst = std::max(worst, std::fabs(logits[i++] - value.get<double>()));
    return worst;
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

// Tokens of a batch that carry a target.
inline std::int64_t counted(const TrainBatch& batch) {
    return std::count_if(batch.targets.begin(), batch.targets.end(), [](std::int32_t t) { return t != -100; });
}

// The LoRA goldens' init formula and gradient error measure (tests/lora_goldens.h).
using kindred::testing::formula_init;
using kindred::testing::relative_max_error;

// The gradients of every adapter tensor of `layer`, in HF layout, in the adapters' order.
inline std::vector<std::vector<float>> layer_gradients(const LoraAdapters& adapters, std::int64_t layer) {
    std::vector<std::vector<float>> out;
    for (const auto& info : adapters.tensors()) {
        if (info.layer != layer) continue;
        out.emplace_back(static_cast<std::size_t>(info.rows * info.cols));
        adapters.get_hf(info.name, out.back(), /*gradient=*/true);
    }
    return out;
}

// Adapters from layer `first` (upper: LoraConfig::first_layer) train what `full` ones train when
// full's adapters below `first` add an exact 0 (B = 0) and the two agree from `first` on: the
// loss and layer `first`'s gradients bit-identical; and a forward from the cached residual
// entering `first` (train/frozen_cache.h) gives the same again. Returns that cached batch.
inline TrainBatch expect_frozen_lower_layers_match(const Decoder& decoder, LoraAdapters& full, LoraAdapters& upper,
                                                   const TrainBatch& batch, std::int64_t first) {
    TrainableDecoder full_trainer(decoder, full, false, 64);
    TrainableDecoder upper_trainer(decoder, upper, false, 64);
    full.zero_grads();
    upper.zero_grads();
    const double loss = upper_trainer.forward_backward(batch, 0.5f).loss;
    EXPECT_EQ(full_trainer.forward_backward(batch, 0.5f).loss, loss);
    const auto expected = layer_gradients(upper, first);
    EXPECT_EQ(layer_gradients(full, first), expected);

    TrainBatch cached = batch;
    const auto residual = upper_trainer.residual_entering(batch, first);
    cached.residual.assign(residual.begin(), residual.end());
    upper.zero_grads();
    EXPECT_EQ(upper_trainer.forward_backward(cached, 0.5f).loss, loss);
    EXPECT_EQ(layer_gradients(upper, first), expected);
    return cached;
}

}  // namespace kindred::model
