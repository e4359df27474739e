// train/schedule.h — the learning-rate schedule: linear warm-up from 0, then constant or cosine
// decay to a floor. Values match transformers' get_constant_schedule_with_warmup,
// get_cosine_schedule_with_warmup and get_cosine_with_min_lr_schedule_with_warmup (min_lr_rate),
// so a run's LR curve can be compared with an HF Trainer run step for step.
#pragma once

#include <cstdint>

namespace kindred::train {

enum class LrDecay { Constant, Cosine };

struct LrSchedule {
    double peak_lr = 0.0;
    std::int64_t warmup_steps = 0;
    std::int64_t total_steps = 0;  // the cosine reaches its floor here (unused by Constant)
    LrDecay decay = LrDecay::Cosine;
    double min_lr_ratio = 0.0;     // cosine floor as a fraction of peak_lr, in [0, 1]
    double cycles = 0.5;           // cosine half-waves × 2 (transformers' num_cycles; 0.5 = one decay)
};

// Throws Error naming the field when the schedule is inconsistent (negative steps, peak_lr < 0,
// min_lr_ratio outside [0, 1], cosine without total_steps).
void validate(const LrSchedule& schedule);

// The learning rate of optimizer step `step`, counted from 0 as transformers' LambdaLR does: the
// first update uses step 0 (so lr 0 when warmup_steps > 0), matching HF Trainer. Steps past
// total_steps continue the cosine formula, as transformers does.
double learning_rate(const LrSchedule& schedule, std::int64_t step);

}  // namespace kindred::train
