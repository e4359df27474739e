// Tests for train/dpo_loss.h: each loss at policy = reference (log 2, zero margin), the
// derivatives against central finite differences, the violation penalty's hinge, the batch
// metrics, and the settings' checks. The losses against TRL's DPOTrainer are in test_dpo_golden.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/dpo_loss.h"

namespace kindred::train {
namespace {

constexpr DpoLossType kAll[] = {DpoLossType::Sigmoid, DpoLossType::Ipo, DpoLossType::Hinge, DpoLossType::Robust};

DpoLossSettings settings_for(DpoLossType type) {
    DpoLossSettings settings;
    settings.type = type;
    settings.beta = 0.1;
    if (type == DpoLossType::Robust) settings.label_smoothing = 0.1;
    return settings;
}

PairLogProbs equal_pair() {
    PairLogProbs pair;
    pair.chosen = pair.ref_chosen = -42.5;
    pair.rejected = pair.ref_rejected = -37.25;
    pair.chosen_tokens = 17;
    pair.rejected_tokens = 11;
    return pair;
}

TEST(DpoLoss, PolicyEqualToReferenceGivesLogTwoAndZeroMargin) {
    const PairLogProbs pair = equal_pair();
    // Δ = 0 exactly (the same doubles on both sides), so these are exact up to the last bit of log.
    EXPECT_DOUBLE_EQ(dpo_pair_loss(pair, settings_for(DpoLossType::Sigmoid)).loss, std::log(2.0));
    EXPECT_DOUBLE_EQ(dpo_pair_loss(pair, settings_for(DpoLossType::Robust)).loss, std::log(2.0));
    EXPECT_DOUBLE_EQ(dpo_pair_loss(pair, settings_for(DpoLossType::Hinge)).loss, 1.0);
    EXPECT_DOUBLE_EQ(dpo_pair_loss(pair, settings_for(DpoLossType::Ipo)).loss, 25.0);  // (1 / (2 · 0.1))²
    for (const auto type : kAll) {
        const PairLoss loss = dpo_pair_loss(pair, settings_for(type));
        EXPECT_EQ(loss.chosen_reward, 0.0);
        EXPECT_EQ(loss.rejected_reward, 0.0);
        const PairLoss losses[] = {loss};
        const PairLogProbs pairs[] = {pair};
        const auto metrics = dpo_batch_metrics(pairs, losses);
        EXPECT_EQ(metrics.rewards_margins, 0.0);
        EXPECT_EQ(metrics.rewards_accuracies, 0.0);  // TRL counts chosen > rejected strictly
    }
    // The sigmoid's gradient at Δ = 0 is ∓β/2: the first step pushes y+ up and y− down equally.
    const PairLoss sigmoid = dpo_pair_loss(pair, settings_for(DpoLossType::Sigmoid));
    EXPECT_DOUBLE_EQ(sigmoid.dchosen, -0.05);
    EXPECT_DOUBLE_EQ(sigmoid.drejected, 0.05);
}

// d loss / d log π by central differences in double. The losses are smooth away from the hinge's
// kink and the penalty's (the points below keep away from both), so with h = 1e-4 the truncation
// error is O(h²·|ℓ'''|) ≈ 1e-9 and rounding ~1e-16/h ≈ 1e-12: 1e-7 absolute is a wide bound.
TEST(DpoLoss, DerivativesMatchFiniteDifferences) {
    PairLogProbs base;
    base.chosen = -40.0;
    base.ref_chosen = -43.0;
    base.rejected = -35.0;
    base.ref_rejected = -33.5;
    base.chosen_tokens = 12;
    base.rejected_tokens = 9;
    for (const bool violates : {false, true}) {
        base.chosen_violates = violates;
        for (const auto type : kAll) {
            SCOPED_TRACE(dpo_loss_name(type));
            DpoLossSettings settings = settings_for(type);
            settings.violation_penalty = 0.7;
            if (type == DpoLossType::Hinge) settings.beta = 0.05;  // keep 1 − βΔ = 0.775 > 0, off the kink
            const PairLoss at = dpo_pair_loss(base, settings);
            const double h = 1e-4;
            PairLogProbs up = base, down = base;
            up.chosen += h;
            down.chosen -= h;
            EXPECT_NEAR(at.dchosen, (dpo_pair_loss(up, settings).loss - dpo_pair_loss(down, settings).loss) / (2 * h), 1e-7);
            up = base;
            down = base;
            up.rejected += h;
            down.rejected -= h;
            EXPECT_NEAR(at.drejected, (dpo_pair_loss(up, settings).loss - dpo_pair_loss(down, settings).loss) / (2 * h),
                        1e-7);
        }
    }
}

// The penalty: λ·max(0, (log πθ(y+) − log πref(y+)) / |y+|) on pairs whose chosen reply violates.
TEST(DpoLoss, ViolationPenaltyOnlyForbidsRaisingAViolatingChosenReply) {
    DpoLossSettings settings = settings_for(DpoLossType::Sigmoid);
    settings.violation_penalty = 2.0;
    PairLogProbs pair = equal_pair();
    pair.chosen_violates = true;
    EXPECT_DOUBLE_EQ(dpo_pair_loss(pair, settings).loss, std::log(2.0));  // 0 at the reference
    EXPECT_EQ(dpo_pair_loss(pair, settings).penalty, 0.0);
    pair.chosen += 3.4;  // raised by 3.4 nats over 17 tokens: 0.2 per token
    const PairLoss raised = dpo_pair_loss(pair, settings);
    EXPECT_NEAR(raised.penalty, 2.0 * 0.2, 1e-12);
    PairLogProbs clean = pair;
    clean.chosen_violates = false;
    EXPECT_NEAR(raised.loss - dpo_pair_loss(clean, settings).loss, 0.4, 1e-12);
    EXPECT_NEAR(raised.dchosen - dpo_pair_loss(clean, settings).dchosen, 2.0 / 17.0, 1e-12);
    pair.chosen -= 6.8;  // lowered below the reference: no penalty, no gradient from it
    EXPECT_EQ(dpo_pair_loss(pair, settings).penalty, 0.0);
}

TEST(DpoLoss, BatchMetricsAreMeansOverPairs) {
    const DpoLossSettings settings = settings_for(DpoLossType::Sigmoid);
    std::vector<PairLogProbs> pairs(3, equal_pair());
    pairs[0].chosen += 2.0;    // reward 0.2 > 0
    pairs[1].rejected += 1.0;  // rejected reward 0.1 > chosen's 0
    pairs[2].chosen_violates = true;
    std::vector<PairLoss> losses;
    for (const auto& pair : pairs) losses.push_back(dpo_pair_loss(pair, settings));
    const auto m = dpo_batch_metrics(pairs, losses);
    EXPECT_EQ(m.pairs, 3u);
    EXPECT_NEAR(m.rewards_chosen, 0.2 / 3.0, 1e-12);
    EXPECT_NEAR(m.rewards_rejected, 0.1 / 3.0, 1e-12);
    EXPECT_NEAR(m.rewards_margins, 0.1 / 3.0, 1e-12);
    EXPECT_NEAR(m.rewards_accuracies, 1.0 / 3.0, 1e-12);
    EXPECT_NEAR(m.logps_chosen, (-40.5 - 42.5 - 42.5) / 3.0, 1e-12);
    EXPECT_NEAR(m.violating_chosen, 1.0 / 3.0, 1e-12);
    EXPECT_NEAR(m.loss, (losses[0].loss + losses[1].loss + losses[2].loss) / 3.0, 1e-12);
    EXPECT_THROW(dpo_batch_metrics({}, {}), Error);
}

TEST(DpoLoss, SettingsAreChecked) {
    EXPECT_EQ(parse_dpo_loss("ipo"), DpoLossType::Ipo);
    EXPECT_THROW(parse_dpo_loss("kto"), Error);
    DpoLossSettings settings;
    EXPECT_NO_THROW(validate(settings));
    settings.beta = 0.0;
    EXPECT_THROW(validate(settings), Error);
    settings.beta = 0.1;
    settings.label_smoothing = 0.1;
    EXPECT_THROW(validate(settings), Error);  // only the robust loss smooths labels
    settings.type = DpoLossType::Robust;
    EXPECT_NO_THROW(validate(settings));
    settings.label_smoothing = 0.5;
    EXPECT_THROW(validate(settings), Error);
    settings.label_smoothing = 0.0;
    settings.violation_penalty = -1.0;
    EXPECT_THROW(validate(settings), Error);
}

}  // namespace
}  // namespace kindred::train
