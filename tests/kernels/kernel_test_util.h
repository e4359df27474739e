// tests/kernels/kernel_test_util.h — random inputs and weights for kernel tests (deterministic seeds).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/half.h"

namespace kindred::testing {

inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float low = -1.0f, float high = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(low, high);
    std::vector<float> values(n);
    for (auto& v : values) v = dist(rng);
    return values;
}

// Random bytes are valid quants for every format here; only the fp16 scale fields need sane
// values (random bits could be inf/NaN). Offsets of the fp16 fields per block, from ggml's layouts.
inline std::vector<std::uint8_t> random_weights(DType type, std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    const auto& info = dtype_info(type);
    const std::int64_t blocks = rows * (cols / info.block_size);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(blocks * info.block_bytes));
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    auto put_half = [&](std::size_t offset, float value) {
        const std::uint16_t h = fp32_to_fp16(value);
        std::memcpy(bytes.data() + offset, &h, sizeof h);
    };
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::size_t base = static_cast<std::size_t>(b * info.block_bytes);
        switch (type) {
            case DType::F32: {
                const float v = unit(rng);
                std::memcpy(bytes.data() + base, &v, sizeof v);
                break;
            }
            case DType::F16: put_half(base, unit(rng)); break;
            case DType::BF16: {
                const std::uint16_t h = fp32_to_bf16(unit(rng));
                std::memcpy(bytes.data() + base, &h, sizeof h);
                break;
            }
            case DType::Q4_0: case DType::Q8_0: put_half(base, 0.01f + 0.05f * std::abs(unit(rng))); break;
            case DType::Q4_1:
                put_half(base, 0.01f + 0.05f * std::abs(unit(rng)));
                put_half(base + 2, -0.3f * std::abs(unit(rng)));
                break;
            case DType::Q6_K: put_half(base + 208, 0.001f + 0.01f * std::abs(unit(rng))); break;
            case DType::Q4_K:  // d and dmin; the six-bit scales and mins multiply them by up to 63
                put_half(base, 0.0005f + 0.002f * std::abs(unit(rng)));
                put_half(base + 2, 0.0005f + 0.002f * std::abs(unit(rng)));
                break;
            case DType::MXFP4:  // e8m0 exponent byte: 2^(e - 127), kept near 1 (255 would be NaN)
                bytes[base] = static_cast<std::uint8_t>(120 + rng() % 8);
                break;
            default: ADD_FAILURE() << "no generator for " << dtype_name(type);
        }
    }
    return bytes;
}

}  // namespace kindred::testing
