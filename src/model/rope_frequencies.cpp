// model/rope_frequencies.cpp — rotary frequencies of a config (see rope_frequencies.h).
#include "model/rope_frequencies.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "kernels/rope.h"

namespace kindred::model {

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
        case RopeScalingType::Yarn: fail("{}: YaRN rope scaling is not supported by the decoder yet", source);
    }
    return inv;
}

}  // namespace kindred::model
