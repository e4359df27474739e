// tests/lora_goldens.h — what the LoRA golden tests share (tests/model/decoder_goldens.h for the
// decoder tests, tests/train/test_dpo_golden.cpp): the deterministic adapter values of
// tools/goldens/lora_training.py (also used by tools/goldens/dpo.py), element i of tensor k being
// float32(scale · ((((i · 7919 + k · 104729 + 13) mod 2001) − 1000) / 1000)) computed in double, so
// C++ reproduces the Python values exactly; and the error measure of a gradient tensor.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kindred::testing {

inline std::vector<float> formula_init(std::int64_t k, std::int64_t count, double scale) {
    std::vector<float> values(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
        const double raw = static_cast<double>((i * 7919 + k * 104729 + 13) % 2001 - 1000) / 1000.0;
        values[static_cast<std::size_t>(i)] = static_cast<float>(scale * raw);
    }
    return values;
}

// Max |a − b| over a tensor, relative to the tensor's largest golden magnitude.
inline double relative_max_error(const std::vector<float>& ours, const std::vector<double>& golden) {
    double worst = 0.0, largest = 0.0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
        worst = std::max(worst, std::fabs(ours[i] - golden[i]));
        largest = std::max(largest, std::fabs(golden[i]));
    }
    return worst / std::max(largest, 1e-30);
}

}  // namespace kindred::testing
