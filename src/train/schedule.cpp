// train/schedule.cpp — learning_rate: transformers' lr_lambda formulas, in double as Python does.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace kindred::train {

void validate(const LrSchedule& s) {
    if (!(s.peak_lr >= 0.0)) fail("lr schedule: peak_lr {} must be >= 0", s.peak_lr);
    if (s.warmup_steps < 0) fail("lr schedule: warmup_steps {} must be >= 0", s.warmup_steps);
    if (s.decay == LrDecay::Cosine) {
        if (s.total_steps <= 0) fail("lr schedule: total_steps {} must be > 0 for cosine decay", s.total_steps);
        if (!(s.min_lr_ratio >= 0.0 && s.min_lr_ratio <= 1.0))
            fail("lr schedule: min_lr_ratio {} must be in [0, 1]", s.min_lr_ratio);
        if (!(s.cycles > 0.0)) fail("lr schedule: cycles {} must be > 0", s.cycles);
    }
}

double learning_rate(const LrSchedule& s, std::int64_t step) {
    validate(s);
    if (step < 0) fail("lr schedule: step {} must be >= 0", step);
    if (step < s.warmup_steps)
        return s.peak_lr * (static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, s.warmup_steps)));
    if (s.decay == LrDecay::Constant) return s.peak_lr;
    const double progress = static_cast<double>(step - s.warmup_steps) /
                            static_cast<double>(std::max<std::int64_t>(1, s.total_steps - s.warmup_steps));
    double factor = 0.5 * (1.0 + std::cos(std::numbers::pi * s.cycles * 2.0 * progress));
    factor = factor * (1.0 - s.min_lr_ratio) + s.min_lr_ratio;
    return s.peak_lr * std::max(0.0, factor);
}

}  // namespace kindred::train
