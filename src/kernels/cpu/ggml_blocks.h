// kernels/cpu/ggml_blocks.h — ggml's block layouts (ggml-common.h) and the small decoders of their
// scale fields, shared by the dequantizers (dequantize.cpp) and the integer dot products
// (int8_dot.cpp); internal to kernels/cpu.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "core/half.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

namespace kindred::ggml_blocks {

constexpr int kQK = 32;     // elements per Q4_0 / Q4_1 / Q5_0 / Q8_0 / MXFP4 block
constexpr int kQK_K = 256;  // elements per K-quant super-block
constexpr std::size_t kQ40Bytes = 18;   // d:f16, qs[16]
constexpr std::size_t kQ41Bytes = 20;   // d:f16, m:f16, qs[16]
constexpr std::size_t kQ50Bytes = 22;   // d:f16, qh[4] (bit j: fifth bit of element j), qs[16]
constexpr std::size_t kQ80Bytes = 34;   // d:f16, qs[32] int8
constexpr std::size_t kQ4KBytes = 144;  // d:f16, dmin:f16, scales[12], qs[128]
constexpr std::size_t kQ6KBytes = 210;  // ql[128], qh[64], scales[16] int8, d:f16
constexpr std::size_t kMxfp4Bytes = 17; // e:e8m0, qs[16]

// MXFP4 element values (e2m1), doubled so they are integers; the scale is halved to match.
constexpr std::array<std::int8_t, 16> kMxfp4Values = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// One instruction with F16C (every block of every row reads one or two scales); the values of
// fp16_to_fp32 for every fp16 but a signalling NaN, which F16C returns quieted.
inline float load_half(const std::uint8_t* p) {
    std::uint16_t bits;
    std::memcpy(&bits, p, sizeof bits);
#ifdef __F16C__
    return _cvtsh_ss(bits);
#else
    return fp16_to_fp32(bits);
#endif
}

// 2^(e-127) / 2, built from bits (e = 0 and 1 give subnormals).
inline float e8m0_to_fp32_half(std::uint8_t e) {
    const std::uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<std::uint32_t>(e - 1) << 23);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// The six-bit scale and min of sub-block j from Q4_K's packed 12-byte scales.
inline void q4k_scale_min(int j, const std::uint8_t* q, std::uint8_t& scale, std::uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        min = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace kindred::ggml_blocks
