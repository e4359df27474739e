// model/rope_frequencies.cpp — rotary frequencies of a config (see rope_frequencies.h).
#include "model/rope_frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "kernels/rope.h"

namespace kindred::model {
namespace {


// transformers' _compute_yarn_parameters: dimensions rotating more than beta_fast times over the
// original context keep their frequency (extrapolation), those rotating fewer than beta_slow times
// are divided by the factor (interpolation), with a linear ramp between the two dimension bounds
// (floored/ceiled only when `truncate`, which gpt-oss turns off). The bounds are computed in double
// as Python does, the ramp and the blend in fp32 as torch does (a Python float meeting an fp32
// tensor is rounded to fp32 first).
void yarn_frequencies(std::vector<float>& inv, const ModelConfig& config, const std::string& source) {
    const RopeScaling& scaling = config.rope_scaling;
    if (!(scaling.beta_fast > 0) || !(scaling.beta_slow > 0) || !std::isfinite(scaling.beta_fast) ||
        !std::isfinite(scaling.beta_slow))
        fail("{}: yarn beta_fast {} and beta_slow {} must be positive", source, scaling.beta_fast, scaling.beta_slow);
    const auto dim = static_cast<double>(config.head_dim);
    const double base = config.rope_theta;
    const auto original = static_cast<double>(scaling.original_max_position_embeddings);
    auto correction_dim = [&](double rotations) {
        return dim * std::log(original / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
    };
    double low = correction_dim(scaling.beta_fast), high = correction_dim(scaling.beta_slow);
    if (scaling.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, dim - 1);
    if (low == high) high += 0.001;  // as transformers: no zero-width ramp
    const auto low_f = static_cast<float>(low), width_f = static_cast<float>(high - low);
    const auto factor = static_cast<float>(scaling.factor), base_f = static_cast<float>(base);
    for (std::size_t i = 0; i < inv.size(); ++i) {
        const float position_frequency = std::pow(base_f, static_cast<float>(2 * i) / static_cast<float>(dim));
        const float extrapolated = 1.0f / position_frequency;
        const float interpolated = 1.0f / (factor * position_frequency);
        const float ramp = std::clamp((static_cast<float>(i) - low_f) / width_f, 0.0f, 1.0f);
        const float keep = 1.0f - ramp;  // the share of the extrapolated frequency
        inv[i] = interpolated * (1.0f - keep) + extrapolated * keep;
    }
}

}  // namespace

std::vector<float> rope_frequencies(const ModelConfig& config, const std::string& source) {
    std::vector<float> inv(static_cast<std::size_t>(config.head_dim / 2));
    kernels::rope_inverse_frequencies(inv.data(), config.head_dim, config.rope_theta);
    const RopeScaling& scaling = config.rope_scaling;
    const auto factor = static_cast<float>(scaling.factor);
    switch (scaling.type) {
        case RopeScalingType::None: break;
        case RopeScalingType::Linear:
            for (auto& f : inv) f /= factor;
            break;
        case RopeScalingType::Llama3: {
            const auto old_context = static_cast<float>(scaling.original_max_position_embeddings);
            const auto low = static_cast<float>(scaling.low_freq_factor), high = static_cast<float>(scaling.high_freq_factor);
            const float low_freq_wavelen = old_context / low, high_freq_wavelen = old_context / high;
            for (auto& f : inv) {
                const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
                if (wavelen > low_freq_wavelen) {
                    f /= factor;
                } else if (wavelen >= high_freq_wavelen) {
                    const float smooth = (old_context / wavelen - low) / (high - low);
                    f = (1.0f - smooth) * f / factor + smooth * f;
                }
            }
            break;
        }
        case RopeScalingType::Yarn: yarn_frequencies(inv, config, source); break;
    }
    return inv;
}

float rope_attention_factor(const ModelConfig& config) {
    const RopeScaling& scaling = config.rope_scaling;
    if (scaling.type != RopeScalingType::Yarn) return 1.0f;
    if (scaling.attention_factor > 0) return static_cast<float>(scaling.attention_factor);
    return scaling.factor <= 1 ? 1.0f : static_cast<float>(0.1 * std::log(scaling.factor) + 1.0);
}

}  // namespace kindred::model
