// train/dpo_loss.h — the preference losses of the DPO stage as functions of one pair's sequence
// log-probabilities, with their derivatives, defined and normalised as TRL's DPOTrainer defines
// them (trl 1.16, trl/trainer/dpo_trainer.py, `_compute_loss`; f_divergence_type "reverse_kl", no
// ld_alpha, no WPO weighting):
//
//   log π(y|x) is the SUM of the completion tokens' log-probabilities (TRL: per_token_logps.sum).
//   chosen_logratio   = log πθ(y+|x) − log πref(y+|x),  rejected_logratio likewise,
//   Δ = chosen_logratio − rejected_logratio,
//   sigmoid  −log σ(βΔ)                                                   (the seed's DPO loss)
//   hinge    max(0, 1 − βΔ)                                               (torch.relu)
//   ipo      (chosen_logratio/|y+| − rejected_logratio/|y−| − 1/(2β))²    (IPO alone is length
//            normalised: |y| = the completion's token count, at least 1, as TRL's completion_mask sum)
//   robust   (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1 − 2ε),  ε = label_smoothing ∈ [0, 0.5)
//            (rDPO; with ε = 0 it is the sigmoid loss; TRL's other label-smoothed loss, the old
//            conservative cDPO inside "sigmoid", is gone in trl 1.x, so `robust` is the one)
//   rewards  β·chosen_logratio and β·rejected_logratio (summed log-probs, IPO included);
//            TRL's rewards/accuracies counts chosen_reward > rejected_reward strictly.
// A batch's loss is the MEAN over its pairs (TRL: per_sequence_loss.mean()).
//
// Violation penalty (Kindred's, not TRL's; docs/dpo.md): a pair whose CHOSEN completion breaks a
// safety rule (train::violation, train/safety_replies.h) adds
//   λ_viol · max(0, chosen_logratio / |y+|)
// to its loss: the policy may not make a violating "preferred" reply more likely, per token, than
// the frozen reference made it. Why this form: DPO pushes the chosen completion up, which on such a
// pair would teach the violation; weighting the pair's DPO loss down would also drop the genuine
// preference signal the pair carries (the judge or the data still preferred it over y−), whereas
// this hinge only forbids the upward move and leaves DPO free to satisfy the preference by pushing
// y− down. It is 0 at the start (policy = reference, so the loss is still log 2 there), bounded
// below by 0, per token so λ_viol does not scale with reply length, and its gradient with respect to
// log πθ(y+|x) is λ_viol/|y+| while active (0 at and below the reference, like torch.relu's).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace kindred::train {

enum class DpoLossType { Sigmoid, Ipo, Hinge, Robust };

// "sigmoid", "ipo", "hinge", "robust" (TRL's loss_type names).
const char* dpo_loss_name(DpoLossType type);
// Error listing the names for anything else.
DpoLossType parse_dpo_loss(std::string_view name);

struct DpoLossSettings {
    DpoLossType type = DpoLossType::Sigmoid;
    double beta = 0.1;
    double label_smoothing = 0.0;    // ε of `robust` (must be 0 for the others)
    double violation_penalty = 0.0;  // λ_viol
};

// One pair's sequence log-probabilities (summed over completion tokens) and what the penalty needs.
struct PairLogProbs {
    double chosen = 0.0, rejected = 0.0;          // log πθ
    double ref_chosen = 0.0, ref_rejected = 0.0;  // log πref (cached)
    std::size_t chosen_tokens = 1, rejected_tokens = 1;
    bool chosen_violates = false;
};

struct PairLoss {
    double loss = 0.0;      // preference loss + penalty
    double penalty = 0.0;   // the penalty part (0 without a violation)
    double dchosen = 0.0;   // d loss / d log πθ(y+|x)
    double drejected = 0.0;  // d loss / d log πθ(y−|x)
    double chosen_reward = 0.0, rejected_reward = 0.0;
};

// Throws Error for β <= 0 (or not finite), ε outside [0, 0.5), ε > 0 with a loss other than
// robust, or a negative penalty weight.
void validate(const DpoLossSettings& settings);

PairLoss dpo_pair_loss(const PairLogProbs& pair, const DpoLossSettings& settings);

// TRL's logged metrics over a batch of pairs (each the mean over the pairs), plus Kindred's.
struct DpoBatchMetrics {
    double loss = 0.0;                 // mean of PairLoss::loss
    double rewards_chosen = 0.0;       // rewards/chosen
    double rewards_rejected = 0.0;     // rewards/rejected
    double rewards_margins = 0.0;      // rewards/margins
    double rewards_accuracies = 0.0;   // rewards/accuracies
    double logps_chosen = 0.0;         // logps/chosen
    double logps_rejected = 0.0;       // logps/rejected
    double penalty = 0.0;              // mean penalty (over all pairs)
    double violating_chosen = 0.0;     // share of pairs whose chosen completion violates a rule
    std::size_t pairs = 0;
};

// Error for an empty batch or spans of different sizes.
DpoBatchMetrics dpo_batch_metrics(std::span<const PairLogProbs> pairs, std::span<const PairLoss> losses);

// The same fields as plain sums over the pairs (pairs = their count; empty spans give zeros), for
// adding up parts of one batch (data parallel ranks); dpo_batch_metrics is batch_means of these.
DpoBatchMetrics dpo_batch_sums(std::span<const PairLogProbs> pairs, std::span<const PairLoss> losses);
// Every field of `sums` divided by sums.pairs; Error when it is 0.
DpoBatchMetrics batch_means(DpoBatchMetrics sums);

}  // namespace kindred::train
