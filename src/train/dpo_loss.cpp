// train/dpo_loss.cpp — the DPO preference losses and their derivatives (see dpo_loss.h).
#include "train/dpo_loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kindred::train {
namespace {

// log σ(x), stable for large |x|: −softplus(−x).
double log_sigmoid(double x) { return -(std::max(-x, 0.0) + std::log1p(std::exp(-std::fabs(x)))); }

double sigmoid(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

}  // namespace

const char* dpo_loss_name(DpoLossType type) {
    switch (type) {
        case DpoLossType::Sigmoid: return "sigmoid";
        case DpoLossType::Ipo: return "ipo";
        case DpoLossType::Hinge: return "hinge";
        case DpoLossType::Robust: return "robust";
    }
    return "?";
}

DpoLossType parse_dpo_loss(std::string_view name) {
    for (const auto type : {DpoLossType::Sigmoid, DpoLossType::Ipo, DpoLossType::Hinge, DpoLossType::Robust})
        if (name == dpo_loss_name(type)) return type;
    fail("unknown DPO loss '{}' (expected sigmoid, ipo, hinge or robust)", name);
}

void validate(const DpoLossSettings& settings) {
    if (!(settings.beta > 0.0) || !std::isfinite(settings.beta)) fail("dpo.beta must be positive, got {}", settings.beta);
    if (!(settings.label_smoothing >= 0.0 && settings.label_smoothing < 0.5))
        fail("dpo.label_smoothing must lie in [0, 0.5), got {}", settings.label_smoothing);
    if (settings.label_smoothing > 0.0 && settings.type != DpoLossType::Robust)
        fail("dpo.label_smoothing applies to the robust loss only (dpo.loss is {})", dpo_loss_name(settings.type));
    if (!(settings.violation_penalty >= 0.0) || !std::isfinite(settings.violation_penalty))
        fail("dpo.violation_penalty must be a non-negative number, got {}", settings.violation_penalty);
}

PairLoss dpo_pair_loss(const PairLogProbs& pair, const DpoLossSettings& settings) {
    const double beta = settings.beta;
    const double chosen_logratio = pair.chosen - pair.ref_chosen;
    const double rejected_logratio = pair.rejected - pair.ref_rejected;
    const double delta = chosen_logratio - rejected_logratio;
    PairLoss out;
    out.chosen_reward = beta * chosen_logratio;
    out.rejected_reward = beta * rejected_logratio;
    double ddelta = 0.0;  // d loss / dΔ for the losses of Δ alone
    switch (settings.type) {
        case DpoLossType::Sigmoid:
            out.loss = -log_sigmoid(beta * delta);
            ddelta = -beta * sigmoid(-beta * delta);
            break;
        case DpoLossType::Hinge: {
            const double margin = 1.0 - beta * delta;
            out.loss = std::max(margin, 0.0);
            ddelta = margin > 0.0 ? -beta : 0.0;
            break;
        }
        case DpoLossType::Robust: {
            const double eps = settings.label_smoothing;
            const double x = beta * delta;
            out.loss = (-(1.0 - eps) * log_sigmoid(x) + eps * log_sigmoid(-x)) / (1.0 - 2.0 * eps);
            ddelta = (-(1.0 - eps) * beta * sigmoid(-x) - eps * beta * sigmoid(x)) / (1.0 - 2.0 * eps);
            break;
        }
        case DpoLossType::Ipo: {
            const auto chosen_n = static_cast<double>(std::max<std::size_t>(pair.chosen_tokens, 1));
            const auto rejected_n = static_cast<double>(std::max<std::size_t>(pair.rejected_tokens, 1));
            const double d = chosen_logratio / chosen_n - rejected_logratio / rejected_n - 1.0 / (2.0 * beta);
            out.loss = d * d;
            out.dchosen = 2.0 * d / chosen_n;
            out.drejected = -2.0 * d / rejected_n;
            break;
        }
    }
    if (settings.type != DpoLossType::Ipo) {
        out.dchosen = ddelta;
        out.drejected = -ddelta;
    }
    if (pair.chosen_violates && settings.violation_penalty > 0.0) {
        const auto n = static_cast<double>(std::max<std::size_t>(pair.chosen_tokens, 1));
        const double per_token = chosen_logratio / n;
        if (per_token > 0.0) {
            out.penalty = settings.violation_penalty * per_token;
            out.loss += out.penalty;
            out.dchosen += settings.violation_penalty / n;
        }
    }
    return out;
}

DpoBatchMetrics dpo_batch_metrics(std::span<const PairLogProbs> pairs, std::span<const PairLoss> losses) {
    if (pairs.empty() || pairs.size() != losses.size())
        fail("dpo metrics: {} pairs and {} losses (need the same, at least one)", pairs.size(), losses.size());
    return batch_means(dpo_batch_sums(pairs, losses));
}

DpoBatchMetrics dpo_batch_sums(std::span<const PairLogProbs> pairs, std::span<const PairLoss> losses) {
    if (pairs.size() != losses.size()) fail("dpo metrics: {} pairs and {} losses", pairs.size(), losses.size());
    DpoBatchMetrics m;
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const PairLoss& l = losses[i];
        m.loss += l.loss;
        m.rewards_chosen += l.chosen_reward;
        m.rewards_rejected += l.rejected_reward;
        m.rewards_margins += l.chosen_reward - l.rejected_reward;
        m.rewards_accuracies += l.chosen_reward > l.rejected_reward ? 1.0 : 0.0;
        m.logps_chosen += pairs[i].chosen;
        m.logps_rejected += pairs[i].rejected;
        m.penalty += l.penalty;
        m.violating_chosen += pairs[i].chosen_violates ? 1.0 : 0.0;
    }
    m.pairs = pairs.size();
    return m;
}

DpoBatchMetrics batch_means(DpoBatchMetrics m) {
    if (m.pairs == 0) fail("dpo metrics: no pairs");
    const auto n = static_cast<double>(m.pairs);
    for (double* value : {&m.loss, &m.rewards_chosen, &m.rewards_rejected, &m.rewards_margins, &m.rewards_accuracies,
                          &m.logps_chosen, &m.logps_rejected, &m.penalty, &m.violating_chosen})
        *value /= n;
    return m;
}

}  // namespace kindred::train
