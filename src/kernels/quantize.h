// kernels/quantize.h — float weights into the 4-bit block formats a frozen base is kept in when a
// bf16/fp32 checkpoint is quantized at load (model/quantize_weights.h; docs/models.md), and rows of
// keys and values into the Q8_0 blocks a KV cache may keep (model/kv_cache.h).
// Both quantizers read their input in any type dequantize_row accepts, a few thousand elements at
// a time, so quantizing a tensor never holds it whole in fp32; work is split over core/thread_pool.
//
// Q4_K: llama.cpp's reference quantizer (ggml-quants.c quantize_row_q4_K_ref, "Q4_K" without an
// importance matrix) reproduced byte for byte: per 32-element sub-block a weighted least-squares
// scale and min searched over 21 candidate steps, then 6-bit scales and mins relative to the
// 256-element super-block's fp16 d and dmin. dequantize_row(Q4_K) and every Q4_K kernel read it.
//
// Q5_0: llama.cpp's reference quantizer (quantize_row_q5_0_ref) byte for byte: per 32 elements an
// fp16 scale d = -(the element of largest magnitude) / 16 and five-bit levels. llama.cpp falls back
// to it when a Q4_K target's rows are not whole 256-element super-blocks, and so does Kindred.
//
// NF4: bitsandbytes' 4-bit NormalFloat as QLoRA stores a frozen base (quantize_4bit with
// blocksize=64, quant_type='nf4', compress_statistics=True), byte for byte on the codes: per
// 64-element block of the flattened tensor, elements times 1/absmax are bucketed into the 16-value
// codebook, two codes a byte (even element in the high nibble); the absmax values, less their
// mean (the offset), are quantized again with bitsandbytes' signed dynamic 8-bit map in blocks of
// 256, each with an fp32 absmax (double quantization). In memory a DType::NF4 tensor is that state
// as bitsandbytes keeps it (core/dtype.h's Nf4Layout, written by nf4_pack; 4.127 bits a weight):
// the kernels restore each block's absmax as they read it, code[absmax_q] · absmax2 + offset in fp32
// (a product and a sum, each rounded), the bits bitsandbytes' dequantize_blockwise gives.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace kindred {

// bitsandbytes' NF4 codebook (get_4bit_type('nf4')), ascending.
inline constexpr std::array<float, 16> kNf4Codebook = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// bitsandbytes' signed dynamic 8-bit map (create_dynamic_map(signed=True)), ascending: the code of
// the double-quantized absmax values.
const std::array<float, 256>& nf4_absmax_code();

// bitsandbytes' QuantState of one NF4 tensor with double quantization, flattened.
struct Nf4State {
    std::int64_t elements = 0;
    std::vector<std::uint8_t> packed;    // elements / 2 bytes
    std::vector<std::uint8_t> absmax_q;  // one per 64-block: the 8-bit code of absmax - offset
    std::vector<float> absmax2;          // one per 256 absmax values
    float offset = 0.0f;                 // mean of the absmax values
};

// Quantizes `n` elements of `type` (a dequantizable type: F32, F16, BF16 in practice) at `src` as
// llama.cpp's quantize_row_q4_K_ref would, writing row_bytes(Q4_K, n) bytes to `dst`. Throws
// Error when n is not a multiple of 256 or an element is not finite (naming its index).
void quantize_q4_k(DType type, const void* src, void* dst, std::int64_t n);

// The same for Q5_0 (row_bytes(Q5_0, n) bytes); n a multiple of 32.
void quantize_q5_0(DType type, const void* src, void* dst, std::int64_t n);

// Q8_0 as llama.cpp's quantize_row_q8_0_ref writes it, byte for byte: per 32 elements d = amax / 127
// stored as fp16, and q = roundf(x · (1/d)) (half away from zero; 1/d from the fp32 d). One row of
// `n` fp32 elements (n a multiple of 32) into row_bytes(Q8_0, n) bytes at `dst`, on the calling
// thread: a KV cache stores one head's row per token this way (model/kv_cache.h).
void quantize_row_q8_0(const float* src, void* dst, std::int64_t n);

// bitsandbytes' NF4 state of the `n` elements of `type` at `src`, taken as one flattened tensor.
// Throws Error when n is not a multiple of 64 or an element is not finite.
Nf4State quantize_nf4(DType type, const void* src, std::int64_t n);

// Each 64-block's absmax as bitsandbytes restores it: code[absmax_q] * absmax2 + offset (fp32).
// The reference the kernels' block-by-block restoration is tested against.
std::vector<float> nf4_absmax(const Nf4State& state);

// The DType::NF4 tensor of `state` (matrix_bytes(NF4, state.elements) bytes at `dst`).
void nf4_pack(const Nf4State& state, void* dst);

}  // namespace kindred
