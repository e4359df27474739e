// tests/kernels/gradient_check.h — finite-difference checking of hand-written backward passes.
//
// For every element x_i of a float input, the numeric derivative is the central difference
//     (L(x_i + h) − L(x_i − h)) / (x₊ − x₋)
// where x₊ and x₋ are the perturbed values actually stored (after rounding to float) and their
// difference is taken in double, so that rounding of the perturbation itself is no error source.
// L is the caller's scalar loss returned in double (the kernels' forwards sum in double).
//
// Step size: h = step · max(1, |x_i|). The error of a central difference is the truncation term
// ≈ h²·|L'''|/6 plus the evaluation noise ≈ ε_L / h, where ε_L is the absolute rounding noise of
// one fp32 forward (≈ 1e-7 · Σ|terms|). Their sum is smallest near h = ∛(3 ε_L / |L'''|), which for
// fp32 kernels with O(1) curvature is 1e-3 … 1e-2; the default 1e-2 favours noise suppression,
// because the kernels are smooth (softmax, quadratic, bilinear) and |L'''| is modest. For losses
// linear in the checked input (LoRA's Σ y·dy w.r.t. A or B alone) truncation vanishes and any h works.
//
// Tolerance: a component passes when |numeric − analytic| ≤ abs_tolerance + rel_tolerance·|analytic|.
// Tests choose both from the analysis above (noise / h plus h² curvature) and state them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>

#include <fmt/format.h>

namespace kindred::testing {

struct GradientCheckOptions {
    double step = 1e-2;
    double abs_tolerance = 1e-4;
    double rel_tolerance = 1e-3;
};

struct GradientCheckResult {
    double max_abs_error = 0.0;  // max |numeric − analytic|
    double max_rel_error = 0.0;  // max |numeric − analytic| / max(|analytic|, |numeric|, 1e-12)
    std::int64_t failures = 0;   // components outside abs_tolerance + rel_tolerance·|analytic|
    std::string first_failure;   // "index i: numeric n analytic a" of the first failing component

    bool passed() const { return failures == 0; }
    std::string describe() const {
        return fmt::format("max abs error {:.3g}, max rel error {:.3g}, {} failures{}{}", max_abs_error,
                           max_rel_error, failures, failures != 0 ? "; first " : "", first_failure);
    }
};

// Compares `analytic` (d loss / d input, same length as input) with central differences of
// `loss()`, which must read `input` (perturbed in place and restored exactly afterwards).
template <typename Loss>
GradientCheckResult check_gradient(std::span<float> input, std::span<const float> analytic, Loss&& loss,
                                   const GradientCheckOptions& options = {}) {
    GradientCheckResult result;
    for (std::size_t i = 0; i < input.size(); ++i) {
        const float original = input[i];
        const double h = options.step * std::max(1.0, std::fabs(static_cast<double>(original)));
        const auto plus = static_cast<float>(original + h);
        const auto minus = static_cast<float>(original - h);
        input[i] = plus;
        const double loss_plus = loss();
        input[i] = minus;
        const double loss_minus = loss();
        input[i] = original;
        const double numeric = (loss_plus - loss_minus) / (static_cast<double>(plus) - static_cast<double>(minus));
        const double a = analytic[i];
        const double error = std::fabs(numeric - a);
        result.max_abs_error = std::max(result.max_abs_error, error);
        result.max_rel_error =
            std::max(result.max_rel_error, error / std::max({std::fabs(a), std::fabs(numeric), 1e-12}));
        if (error > options.abs_tolerance + options.rel_tolerance * std::fabs(a)) {
            if (result.failures == 0)
                result.first_failure = fmt::format("index {}: numeric {:.9g} analytic {:.9g}", i, numeric, a);
            ++result.failures;
        }
    }
    return result;
}

}  // namespace kindred::testing
