// tests/kernels/kernel_test_util.h — random inputs for kernel tests (deterministic seeds).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace kindred::testing {

inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float low = -1.0f, float high = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(low, high);
    std::vector<float> values(n);
    for (auto& v : values) v = dist(rng);
    return values;
}

}  // namespace kindred::testing
