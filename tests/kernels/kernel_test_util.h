// tests/kernels/kernel_test_util.h — random inputs and weights for kernel tests (deterministic seeds).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/half.h"
#include "kernels/attention.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/dequantize.h"

namespace kindred::testing {

inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float low = -1.0f, float high = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(low, high);
    std::vector<float> values(n);
    for (auto& v : values) v = dist(rng);
    return values;
}

// The little-endian values whose bytes `hex` spells (goldens store arrays so).
template <typename T>
std::vector<T> from_hex(const std::string& hex) {
    std::vector<T> out(hex.size() / 2 / sizeof(T));
    auto* bytes = reinterpret_cast<std::uint8_t*>(out.data());
    for (std::size_t i = 0; i < out.size() * sizeof(T); ++i)
        bytes[i] = static_cast<std::uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    return out;
}

// Random bytes are valid quants for every format here; only the fp16 scale fields need sane
// values (random bits could be inf/NaN). Offsets of the fp16 fields per block, from ggml's layouts.
// NF4's scales are per tensor (core/dtype.h's Nf4Layout): random codes and absmax codes, and
// nested scales below the offset, so that every restored absmax is positive, as a quantizer's is.
inline std::vector<std::uint8_t> random_weights(DType type, std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    const auto& info = dtype_info(type);
    const std::int64_t blocks = rows * (cols / info.block_size);
    std::vector<std::uint8_t> bytes(matrix_bytes(type, static_cast<std::uint64_t>(rows * cols)));
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    if (type == DType::NF4) {
        const Nf4Layout layout = nf4_layout(static_cast<std::uint64_t>(rows * cols));
        auto put_float = [&](std::uint64_t offset, float value) { std::memcpy(bytes.data() + offset, &value, sizeof value); };
        for (std::uint64_t g = 0; g < layout.groups; ++g) put_float(layout.nested + 4 * g, 0.01f + 0.04f * std::abs(unit(rng)));
        put_float(layout.nested + 4 * layout.groups, 0.06f);
        return bytes;
    }
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
            case DType::Q4_0: case DType::Q5_0: case DType::Q8_0: put_half(base, 0.01f + 0.05f * std::abs(unit(rng))); break;
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

// The [rows x cols] weights stored in `bytes` (of `type`), dequantized to fp32.
inline std::vector<float> dequantized_weights(DType type, const std::vector<std::uint8_t>& bytes, std::int64_t rows,
                                              std::int64_t cols) {
    std::vector<float> w(static_cast<std::size_t>(rows * cols));
    for (std::int64_t r = 0; r < rows; ++r)
        dequantize_span(type, bytes.data(), rows * cols, r * cols, w.data() + r * cols, cols);
    return w;
}

// Tolerance of a sum of k products that are exact in fp32 (bf16 x bf16), summed in fp32: at most
// k·2^-24 · Σ|terms| in any order (the recursive-summation bound), plus 1e-6 absolute.
inline double fp32_sum_bound(std::int64_t k, double magnitude) {
    return static_cast<double>(k) * std::ldexp(1.0, -24) * magnitude + 1e-6;
}

// Attention over a row of `tokens` positions whose keys and values are laid out as a cache,
// [kv_heads x tokens x head_dim], without past, window, sinks or segments.
inline kernels::AttentionShape row_attention_shape(std::int64_t tokens, std::int64_t heads, std::int64_t kv_heads,
                                                   std::int64_t head_dim, float scale) {
    kernels::AttentionShape shape;
    shape.tokens = tokens;
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.kv_head_stride = tokens * head_dim;
    shape.scale = scale;
    return shape;
}

}  // namespace kindred::testing

// For tests of the bf16 products, which need AMX-BF16.
#define SKIP_WITHOUT_AMX() \
    if (!kindred::kernels::cpu::bf16::available()) GTEST_SKIP() << "this CPU or build has no AMX-BF16"
