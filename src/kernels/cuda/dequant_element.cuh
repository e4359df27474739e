// kernels/cuda/dequant_element.cuh — one element of a stored weight row, on the device: the
// block layouts of ggml-common.h and the CPU's arithmetic (kernels/cpu/dequantize.cpp), shared by
// the dequantize kernels and the fused mat-vec so that both stay bit-exact with the CPU. Each
// product and sum goes through an __f*_rn intrinsic, which nvcc never fuses into an FMA (a plain
// a * b + c would be contracted and round once, where the CPU rounds twice).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/nf4_dynamic_map.h"

namespace kindred::cuda {
// Internal linkage: each .cu file that includes this gets its own copy (no relocatable device code).
namespace {

// MXFP4 (e2m1) element values, doubled so they are integers; the scale is halved to match.
__constant__ signed char kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// bitsandbytes' NF4 codebook: the same fp32 values as kernels/quantize.h's kNf4Codebook (host
// constexpr arrays cannot be indexed on the device); tests/kernels_cuda compares every element.
__constant__ float kNf4Values[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                     -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                     0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                                     0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                                     0.7229568362236023f, 1.0f};

// The positive half of bitsandbytes' dynamic 8-bit map, the code of NF4's absmax values
// (kernels/nf4_dynamic_map.h: the same literals as the host's nf4_absmax_code()).
__constant__ float kNf4DynamicMapPositive[127] = {KINDRED_NF4_DYNAMIC_MAP_POSITIVE};

// Entry q of the whole map, as nf4_absmax_code() mirrors it: the list negated from the largest,
// 0, the list, 1.
__device__ __forceinline__ float nf4_dynamic_map(unsigned int q) {
    if (q < 127) return -kNf4DynamicMapPositive[126 - q];
    if (q == 127) return 0.0f;
    return q == 255 ? 1.0f : kNf4DynamicMapPositive[q - 128];
}

__device__ __forceinline__ float load_half(const std::uint8_t* p) {
    // Every fp16 field of the supported layouts sits at an even byte offset.
    return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

// 2^(e-127) / 2 from bits, as the CPU's e8m0_to_fp32_half (e = 0 and 1 give subnormals).
__device__ __forceinline__ float e8m0_to_fp32_half(std::uint8_t e) {
    const unsigned int bits = e < 2 ? (0x00200000u << e) : (static_cast<unsigned int>(e - 1) << 23);
    return __uint_as_float(bits);
}

// Element i of the tensor of n elements of `type` that starts at `src`. The byte offsets are
// ggml-common.h's block layouts, as in the CPU file, and for NF4 core/dtype.h's Nf4Layout, whose
// blocks find their nested scale and the offset past all the codes (n tells where).
template <DType type>
__device__ __forceinline__ float dequant_element(const std::uint8_t* src, long long i, [[maybe_unused]] long long n) {
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
    } else if constexpr (type == DType::NF4) {  // element 2j high nibble of byte j; Nf4Layout
        const long long block = i / 64, blocks = n / 64;
        const long long nested_at = (n / 2 + blocks + 3) / 4 * 4;  // Nf4Layout::nested
        float nested, offset;
        memcpy(&nested, src + nested_at + 4 * (block / 256), sizeof nested);
        memcpy(&offset, src + nested_at + 4 * ((blocks + 255) / 256), sizeof offset);
        const float absmax = __fadd_rn(__fmul_rn(nf4_dynamic_map(src[n / 2 + block]), nested), offset);
        const std::uint8_t q = src[i / 2];
        return __fmul_rn(kNf4Values[(i & 1) ? (q & 0xF) : (q >> 4)], absmax);
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
