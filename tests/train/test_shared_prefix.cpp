// Tests for train/shared_prefix.h on the random tiny Llama (2 layers, vocab 96): a row of pairs
// with each pair's common prefix run once gives every packed position the hidden state the packed
// row gives it, and the adapters the gradients the packed row gives them; it runs fewer tokens;
// and without sharing it is the packed row itself.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tiny_sft_model.h"
#include "core/error.h"
#include "train/batch.h"
#include "train/shared_prefix.h"

namespace kindred::train {
namespace {

using testing::tiny;

std::vector<float> random_values(std::size_t n, std::uint32_t seed, float scale) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-scale, scale);
    std::vector<float> values(n);
    for (auto& value : values) value = uniform(rng);
    return values;
}

// Three pairs: a 5-token prompt; the first pair's completions also share their first two tokens.
PairDataset prefix_pairs() {
    PairDataset dataset;
    dataset.path = "pairs.jsonl";
    const std::vector<std::vector<std::int32_t>> prompts = {{3, 9, 14, 20, 7}, {5, 6, 7, 8, 9}, {40, 41, 2, 2, 60}};
    const std::vector<std::vector<std::int32_t>> chosen = {{11, 12, 13, 30}, {50, 51, 52}, {70, 71, 72, 73, 74}};
    const std::vector<std::vector<std::int32_t>> rejected = {{11, 12, 80, 81, 82}, {60, 61}, {33, 34, 35}};
    for (std::size_t p = 0; p < prompts.size(); ++p) {
        PairInfo info;
        dataset.examples.push_back(tokenized_pair(prompts[p], chosen[p], rejected[p], p + 1, info));
        dataset.pairs.push_back(info);
    }
    return dataset;
}

TEST(SharedPrefix, SameHiddenStatesAndGradientsAsThePackedRow) {
    const PairDataset pairs = prefix_pairs();
    const auto rows = pack_in_order(pairs.examples, 64);
    ASSERT_EQ(rows.size(), 1u);
    std::vector<std::size_t> offsets;
    const model::TrainBatch packed = ordered_row(pairs.examples, rows[0], offsets);
    std::vector<PairAt> placed;
    for (std::size_t j = 0; j < rows[0].size(); ++j) placed.push_back({offsets[j], rows[0][j]});

    model::LoraConfig lora;
    lora.rank = 4;
    lora.alpha = 8.0;
    model::LoraAdapters adapters(tiny().config(), lora, tiny().weights().qk_interleaved);
    const auto values = random_values(adapters.params().size(), 7, 0.2f);
    std::copy(values.begin(), values.end(), adapters.params().begin());
    model::TrainableDecoder trainer(tiny(), adapters, false, 64, kernels::Precision::F32);
    ASSERT_TRUE(trainer.shares_prefixes_exactly(true));

    const SharedPrefixRow shared(packed, placed, pairs, true);
    // Prompts of 5 tokens, and 2 more completion tokens in the first pair.
    EXPECT_EQ(shared.batch().tokens.size(), packed.tokens.size() - 5 - 7 - 5);
    const SharedPrefixRow unshared(packed, placed, pairs, false);
    EXPECT_EQ(unshared.batch().tokens, packed.tokens);

    const std::int64_t dim = tiny().config().hidden_size;
    const auto n = static_cast<std::int64_t>(packed.tokens.size());
    const auto dhidden = random_values(static_cast<std::size_t>(n * dim), 8, 1.0f);

    adapters.zero_grads();
    const auto full_span = trainer.forward(packed);
    const std::vector<float> full(full_span.begin(), full_span.end());
    trainer.backward(dhidden);
    const std::vector<float> full_grads(adapters.grads().begin(), adapters.grads().end());

    adapters.zero_grads();
    std::vector<float> expanded, folded;
    shared.expand(trainer.forward(shared.batch()), expanded, dim);
    shared.fold(dhidden, folded, dim);
    trainer.backward(folded);
    // Hidden states of magnitude ~1 through 2 layers, the same products over fewer or more rows
    // (sgemm blocking reorders sums): 1e-5. Gradients sum two copies of the prefix in another
    // order: 1e-5 relative to the largest.
    ASSERT_EQ(expanded.size(), full.size());
    for (std::size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(expanded[i], full[i], 1e-5) << i;
    float largest = 0.0f;
    for (float g : full_grads) largest = std::max(largest, std::abs(g));
    ASSERT_GT(largest, 0.0f);
    const auto grads = adapters.grads();
    for (std::size_t i = 0; i < full_grads.size(); ++i) ASSERT_NEAR(grads[i], full_grads[i], 1e-5f * largest) << i;
}

TEST(SharedPrefix, RefusesAPairThatIsNotWhereItsPlacementSays) {
    const PairDataset pairs = prefix_pairs();
    const auto rows = pack_in_order(pairs.examples, 64);
    std::vector<std::size_t> offsets;
    const model::TrainBatch packed = ordered_row(pairs.examples, rows[0], offsets);
    const std::vector<PairAt> shifted = {{offsets[0] + 2, 0}};
    EXPECT_THROW(SharedPrefixRow(packed, shifted, pairs, true), Error);
    const std::vector<PairAt> outside = {{offsets[2] + 4, 2}};
    EXPECT_THROW(SharedPrefixRow(packed, outside, pairs, true), Error);
}

}  // namespace
}  // namespace kindred::train
