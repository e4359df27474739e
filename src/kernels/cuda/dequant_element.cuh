// kernels/cuda/dequant_element.cuh — one element of a stored weight row, on the device: the
// block layouts of ggml-common.h and the CPU's arithmetic (kernels/cpu/dequantize.cpp), shared by
// the dequantize kernels and the fused mat-vec so that both stay bit-exact with the CPU. Each
// product and sum goes through an __f*_rn intrinsic, which nvcc never fuses into an FMA (a plain
// a * b + c would be contracted and round once, where the CPU rounds twice).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "core/dtype.h"

namespace kindred::cuda {
// Internal linkage: each .cu file that includes this gets its own copy (no relocatable device code).
namespace {

// MXFP4 (e2m1) element values, doubled so they are integers; the scale is halved to match.
__constant__ signed char kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

__device__ __forceinline__ float load_half(const std::uint8_t* p) {
    // Every fp16 field of the supported layouts sits at an even byte offset.
    return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

// 2^(e-127) / 2 from bits, as the CPU's e8m0_to_fp32_half (e = 0 and 1 give subnormals).
__device__ __forceinline__ float e8m0_to_fp32_half(std::uint8_t e) {
    const unsigned int bits = e < 2 ? (0x00200000u << e) : (static_cast<unsigned int>(e - 1) << 23);
    return __uint_as_float(bits);
}

// Element i of a row of `type`; `src` is the row's (or tensor's) first byte. The byte offsets are
// ggml-common.h's block layouts, as in the CPU file.
template <DType type>
__device__ __forceinline__ float dequant_element(const std::uint8_t* src, long long i) {
    if constexpr (type == DType::F32) {
        return reinterpret_cast<const float*>(src)[i];
    } else if constexpr (type == DType::F16) {
        return load_half(src + 2 * i);
    } else if constexpr (type == DType::BF16) {
        return __uint_as_float(static_cast<unsigned int>(reinterpret_cast<const unsigned short*>(src)[i]) << 16);
    } else if constexpr (type == DType::Q4_0) {  // d:f16, qs[16]; byte j: element j low, j + 16 high
        const std::uint8_t* block = src + (i / 32) * 18;
        const int j = static_cast<int>(i % 32);
        const std::uint8_t q = block[2 + (j & 15)];
        const int nibble = j < 16 ? (q & 0xF) : (q >> 4);
        return __fmul_rn(static_cast<float>(nibble - 8), load_half(block));
    } else if constexpr (type == DType::Q4_1) {  // d:f16, m:f16, qs[16]
        const std::uint8_t* block = src + (i / 32) * 20;
        const int j = static_cast<int>(i % 32);
        const std::uint8_t q = block[4 + (j & 15)];
        const int nibble = j < 16 ? (q & 0xF) : (q >> 4);
        return __fadd_rn(__fmul_rn(static_cast<float>(nibble), load_half(block)), load_half(block + 2));
    } else if constexpr (type == DType::Q5_0) {  // d:f16, qh[4] (bit j: fifth bit of element j), qs[16]
        const std::uint8_t* block = src + (i / 32) * 22;
        const int j = static_cast<int>(i % 32);
        const std::uint8_t q = block[6 + (j & 15)];
        const int nibble = j < 16 ? (q & 0xF) : (q >> 4);
        const int fifth = (block[2 + j / 8] >> (j % 8)) & 1;
        return __fmul_rn(static_cast<float>((nibble | (fifth << 4)) - 16), load_half(block));
    } else if constexpr (type == DType::Q8_0) {  // d:f16, qs[32] int8
        const std::uint8_t* block = src + (i / 32) * 34;
        const int j = static_cast<int>(i % 32);
        return __fmul_rn(static_cast<float>(static_cast<std::int8_t>(block[2 + j])), load_half(block));
    } else if constexpr (type == DType::Q4_K) {  // d:f16, dmin:f16, scales[12], qs[128]
        // 256 elements = 4 chunks of 64; chunk c's 32 bytes hold sub-block 2c in the low nibbles
        // and sub-block 2c + 1 in the high nibbles.
        const std::uint8_t* block = src + (i / 256) * 144;
        const int e = static_cast<int>(i % 256);
        const int chunk = e / 64;
        const int l = e % 32;
        const bool high = (e % 64) >= 32;
        const int sub = 2 * chunk + (high ? 1 : 0);
        const std::uint8_t* scales = block + 4;
        int scale, min;
        if (sub < 4) {
            scale = scales[sub] & 63;
            min = scales[sub + 4] & 63;
        } else {
            scale = (scales[sub + 4] & 0xF) | ((scales[sub - 4] >> 6) << 4);
            min = (scales[sub + 4] >> 4) | ((scales[sub] >> 6) << 4);
        }
        const float d = __fmul_rn(load_half(block), static_cast<float>(scale));
        const float m = __fmul_rn(load_half(block + 2), static_cast<float>(min));
        const std::uint8_t q = block[16 + 32 * chunk + l];
        const int nibble = high ? (q >> 4) : (q & 0xF);
        return __fsub_rn(__fmul_rn(d, static_cast<float>(nibble)), m);
    } else if constexpr (type == DType::Q6_K) {  // ql[128], qh[64], scales[16] int8, d:f16
        // 256 elements = 2 halves of 128; each half is 4 quarters of 32 built from ql (low four
        // bits: quarters 0/2 from bytes l, 1/3 from bytes l + 32, low or high nibble) and qh
        // (two bits per quarter), with scale index l / 16 + 2 · quarter.
        const std::uint8_t* block = src + (i / 256) * 210;
        const int e = static_cast<int>(i % 256);
        const int half = e / 128;
        const int quarter = (e % 128) / 32;
        const int l = e % 32;
        const std::uint8_t* ql = block + 64 * half;
        const std::uint8_t* qh = block + 128 + 32 * half;
        const auto* sc = reinterpret_cast<const std::int8_t*>(block + 192 + 8 * half);
        const std::uint8_t low_byte = ql[l + 32 * (quarter & 1)];
        const int low = quarter < 2 ? (low_byte & 0xF) : (low_byte >> 4);
        const int q = (low | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
        const float d = load_half(block + 208);
        return __fmul_rn(__fmul_rn(d, static_cast<float>(sc[l / 16 + 2 * quarter])), static_cast<float>(q));
    } else {
        static_assert(type == DType::MXFP4, "dequant_element: unsupported type");
        // e:e8m0, qs[16]
        const std::uint8_t* block = src + (i / 32) * 17;
        const int j = static_cast<int>(i % 32);
        const std::uint8_t q = block[1 + (j & 15)];
        const int nibble = j < 16 ? (q & 0xF) : (q >> 4);
        return __fmul_rn(static_cast<float>(kMxfp4Values[nibble]), e8m0_to_fp32_half(block[0]));
    }
}

}  // namespace
}  // namespace kindred::cuda
