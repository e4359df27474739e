// Tests for train/batch.h: the seeded order, packing invariants (segments, positions, targets
// never crossing a conversation), exact resumption from a saved position, the step's loss
// normalisers, placements, and head-only examples (no LM target).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include "core/error.h"
#include "train/batch.h"

namespace kindred::train {
namespace {

// Example i has `lengths[i]` tokens valued i * 1000 + t, so a packed token says where it came from;
// its targets are the next token except for the first and last (like a prompt and a row end).
std::vector<TokenizedExample> make_examples(const std::vector<std::size_t>& lengths) {
    std::vector<TokenizedExample> out;
    for (std::size_t i = 0; i < lengths.size(); ++i) {
        TokenizedExample e;
        e.line = i + 1;
        for (std::size_t t = 0; t < lengths[i]; ++t) e.tokens.push_back(static_cast<std::int32_t>(i * 1000 + t));
        e.targets.assign(e.tokens.size(), kIgnoreTarget);
        for (std::size_t t = 1; t + 1 < e.tokens.size(); ++t) {
            e.targets[t] = e.tokens[t + 1];
            ++e.target_count;
        }
        out.push_back(std::move(e));
    }
    return out;
}

const std::vector<std::size_t> kLengths = {5, 17, 3, 30, 9, 12, 1, 32, 8, 8, 20, 4, 16};

TEST(EpochOrder, IsASeededPermutation) {
    const auto a = epoch_order(100, 42, 0);
    auto sorted = a;
    std::sort(sorted.begin(), sorted.end());
    for (std::uint32_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[i], i);
    EXPECT_EQ(a, epoch_order(100, 42, 0));
    EXPECT_NE(a, epoch_order(100, 43, 0));
    EXPECT_NE(a, epoch_order(100, 42, 1));
    // Pinned: splitmix64 + Fisher-Yates is fully specified, so every platform and standard library
    // must produce this order (std::shuffle would not); the values come from an independent Python
    // rendition of the same algorithm.
    EXPECT_EQ(epoch_order(8, 7, 3), (std::vector<std::uint32_t>{3, 5, 1, 2, 6, 0, 4, 7}));
}

TEST(Packer, RowsKeepConversationsApart) {
    const auto examples = make_examples(kLengths);
    PackingOptions options{32, 3, 1, 9, -1};
    Packer packer(examples, options);
    std::map<std::int32_t, int> seen;  // example id -> times packed in the first epoch
    std::size_t packed = 0;
    while (packed < examples.size()) {
        const auto batch = packer.next_micro_batch();
        ASSERT_EQ(batch.tokens.size(), 3u * 32u);
        std::size_t targets = 0;
        for (std::size_t row = 0; row < batch.rows; ++row) {
            const std::size_t base = row * batch.seq_len;
            for (std::size_t t = 0; t < batch.seq_len; ++t) {
                const auto i = base + t;
                const bool starts = t == 0 || batch.segment_ids[i] != batch.segment_ids[i - 1];
                if (t > 0) {
                    EXPECT_GE(batch.segment_ids[i], batch.segment_ids[i - 1]);
                } else {
                    EXPECT_EQ(batch.segment_ids[i], 0);
                }
                if (starts) {
                    EXPECT_EQ(batch.positions[i], 0);
                } else {
                    EXPECT_EQ(batch.positions[i], batch.positions[i - 1] + 1);
                }
                if (batch.tokens[i] == -1) {  // padding
                    EXPECT_EQ(batch.targets[i], kIgnoreTarget);
                    continue;
                }
                const auto id = batch.tokens[i] / 1000;
                EXPECT_EQ(batch.tokens[i] % 1000, batch.positions[i]);
                if (batch.positions[i] == 0 && packed < examples.size()) {
                    ++seen[id];
                    ++packed;
                }
                if (batch.targets[i] != kIgnoreTarget) {
                    ++targets;
                    // The target is the next token of the same conversation, never across a boundary.
                    ASSERT_LT(t + 1, batch.seq_len);
                    EXPECT_EQ(batch.targets[i], batch.tokens[i + 1]);
                    EXPECT_EQ(batch.segment_ids[i + 1], batch.segment_ids[i]);
                }
            }
        }
        EXPECT_EQ(targets, batch.target_tokens);
    }
    EXPECT_EQ(seen.size(), examples.size());
    for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << "example " << id;
}

TEST(Packer, ResumesExactlyFromASavedPosition) {
    const auto examples = make_examples(kLengths);
    const PackingOptions options{40, 2, 2, 1234, 0};
    Packer original(examples, options);
    for (int i = 0; i < 5; ++i) original.next_step();  // crosses an epoch boundary
    const DataPosition saved = original.position();
    EXPECT_GT(saved.epoch, 0u);
    Packer resumed(examples, options, saved);
    for (int i = 0; i < 6; ++i) {
        const auto a = original.next_step();
        const auto b = resumed.next_step();
        ASSERT_EQ(a.micro_batches.size(), 2u);
        EXPECT_EQ(a.target_tokens, b.target_tokens);
        for (std::size_t m = 0; m < 2; ++m) {
            EXPECT_EQ(a.micro_batches[m].tokens, b.micro_batches[m].tokens);
            EXPECT_EQ(a.micro_batches[m].targets, b.micro_batches[m].targets);
            EXPECT_EQ(a.micro_batches[m].positions, b.micro_batches[m].positions);
            EXPECT_EQ(a.micro_batches[m].segment_ids, b.micro_batches[m].segment_ids);
            ASSERT_EQ(a.micro_batches[m].placements.size(), b.micro_batches[m].placements.size());
            for (std::size_t p = 0; p < a.micro_batches[m].placements.size(); ++p) {
                const auto& x = a.micro_batches[m].placements[p];
                const auto& y = b.micro_batches[m].placements[p];
                EXPECT_EQ(std::tie(x.row, x.offset, x.example), std::tie(y.row, y.offset, y.example));
            }
        }
        EXPECT_EQ(original.position(), resumed.position());
    }
}

TEST(Packer, StepNormaliserCountsEveryMicroBatch) {
    const auto examples = make_examples(kLengths);
    Packer packer(examples, {32, 1, 4, 5, 0});
    const auto step = packer.next_step();
    ASSERT_EQ(step.micro_batches.size(), 4u);
    std::size_t sum = 0;
    for (const auto& batch : step.micro_batches) {
        std::size_t counted = 0;
        for (const auto target : batch.targets) counted += target != kIgnoreTarget;
        EXPECT_EQ(counted, batch.target_tokens);
        sum += counted;
    }
    EXPECT_EQ(step.target_tokens, sum);
    EXPECT_GT(sum, 0u);
}

// Every packed example is placed once per epoch, in row order, where its tokens really are.
TEST(Packer, PlacementsLocateEveryPackedExample) {
    const auto examples = make_examples(kLengths);
    Packer packer(examples, {32, 2, 1, 77, -1});
    std::vector<int> placed(examples.size(), 0);
    std::size_t packed = 0;
    while (packed < examples.size()) {
        const auto batch = packer.next_micro_batch();
        ASSERT_EQ(batch.placements.size(), batch.examples);
        for (std::size_t p = 0; p < batch.placements.size(); ++p) {
            const auto& place = batch.placements[p];
            if (p > 0) {
                const auto& before = batch.placements[p - 1];
                EXPECT_TRUE(place.row > before.row || (place.row == before.row && place.offset > before.offset));
            }
            ASSERT_LT(place.example, examples.size());
            const auto& tokens = examples[place.example].tokens;
            ASSERT_LE(place.offset + tokens.size(), batch.seq_len);
            const auto at = batch.tokens.begin() + static_cast<std::ptrdiff_t>(place.row * batch.seq_len + place.offset);
            EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), at)) << "example " << place.example;
            if (packed < examples.size()) {
                ++placed[place.example];
                ++packed;
            }
        }
    }
    for (std::size_t i = 0; i < examples.size(); ++i) EXPECT_EQ(placed[i], 1) << "example " << i;
}

// GoEmotions-like examples: no LM target, one head site. They pack like any other; a step made of
// them only has target_tokens 0 and counts its sites per label kind.
TEST(Packer, PacksHeadOnlyExamplesAndCountsSites) {
    std::vector<TokenizedExample> examples = make_examples({6, 9, 4});
    for (auto& e : examples) {
        e.targets.assign(e.tokens.size(), kIgnoreTarget);
        e.target_count = 0;
        HeadSite site;
        site.position = static_cast<std::int32_t>(e.tokens.size() - 1);
        site.emotions = {3, 5};
        e.sites.push_back(site);
    }
    examples[1].sites[0].has_va = true;
    examples[2].sites.push_back(HeadSite{1, {}, 4, false, 0.0f, 0.0f});  // strategy only
    Packer packer(examples, {19, 1, 1, 3, 0});  // 6 + 9 + 4: one row is exactly one epoch
    const auto step = packer.next_step();
    EXPECT_EQ(step.target_tokens, 0u);
    EXPECT_EQ(step.micro_batches[0].examples, 3u);
    EXPECT_EQ(step.emotion_sites, 3u);
    EXPECT_EQ(step.strategy_sites, 1u);
    EXPECT_EQ(step.va_sites, 1u);
    EXPECT_EQ(step.micro_batches[0].emotion_sites, 3u);

    examples[0].sites[0].position = 6;  // one past its last token
    EXPECT_THROW(Packer(examples, {32, 1, 1, 0, 0}), Error);
}

TEST(Packer, RefusesWhatCannotBePacked) {
    const auto examples = make_examples(kLengths);
    EXPECT_THROW(Packer(examples, {31, 1, 1, 0, 0}), Error);  // the 32-token example does not fit
    EXPECT_THROW(Packer({}, {32, 1, 1, 0, 0}), Error);
    EXPECT_THROW(Packer(examples, {0, 1, 1, 0, 0}), Error);
    EXPECT_THROW(Packer(examples, {32, 0, 1, 0, 0}), Error);
    EXPECT_THROW(Packer(examples, {32, 1, 1, 0, 0}, {0, examples.size() + 1}), Error);
    // The end of an epoch is the start of the next one.
    const Packer at_end(examples, {32, 1, 1, 0, 0}, {2, examples.size()});
    EXPECT_EQ(at_end.position(), (DataPosition{3, 0}));
}

}  // namespace
}  // namespace kindred::train
