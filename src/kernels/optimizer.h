// kernels/optimizer.h — the parameter update of training: AdamW over a flat fp32 buffer and the
// global gradient-norm clipping that precedes it, with torch's semantics so that a run can be
// compared step for step with torch.optim.AdamW + torch.nn.utils.clip_grad_norm_.
#pragma once

#include <cstdint>
#include <span>

namespace kindred::kernels {

// Hyperparameters are doubles because torch's are Python floats: 1 − β1 is formed in double
// and only then rounded to fp32 (1 − 0.9f would differ from fp32(1 − 0.9) by 2 ulps).
struct AdamWConfig {
    double lr = 1e-3;  // this step's learning rate (from train/schedule.h)
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;  // torch.optim.AdamW's default
};

// One torch.optim.AdamW step (amsgrad off, maximize off), elementwise in fp32 in torch's order:
//   p *= 1 − lr·wd                                  (decoupled decay, before the update)
//   m  = fma(1 − β1, g − m, m)                      (torch's lerp_)
//   v  = fma((1 − β2)·g, g, β2·v)                   (mul_ then addcmul_)
//   p += (−lr / (1 − β1^step)) · m / (√v / √(1 − β2^step) + eps)   (addcdiv_; eps outside the root)
// `step` counts updates from 1 (torch's state["step"] after its increment); m and v start at 0.
// Scalar factors are computed in double and rounded to fp32, as torch does with Python floats.
// Throws Error when step < 1.
void adamw_step(float* params, const float* grads, float* m, float* v, std::int64_t n, const AdamWConfig& config,
                std::int64_t step);

// √(Σ g²) over all buffers, accumulated in double.
double global_grad_norm(std::span<const std::span<const float>> grads);

// torch.nn.utils.clip_grad_norm_(norm_type=2): coefficient = max_norm / (norm + 1e-6); when it is
// below 1 every gradient is multiplied by it (torch multiplies by min(coefficient, 1), which is
// the same). Returns the norm before clipping, as torch does. A non-finite norm is returned with
// the gradients left as they are (torch would multiply them by NaN): the caller skips that step.
double clip_grad_norm(std::span<const std::span<float>> grads, double max_norm);

}  // namespace kindred::kernels
