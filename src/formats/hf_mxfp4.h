// formats/hf_mxfp4.h — gpt-oss's MXFP4 expert weights as Hugging Face ships them, repacked into
// ggml's MXFP4 blocks (what a GGUF file holds and the kernels read), still 4-bit.
//
// HF: `<name>_blocks` U8 [experts, rows, cols/32, 16], byte j of a 32-element block holding
// elements 2j (low nibble) and 2j + 1 (high nibble), and `<name>_scales` U8 [experts, rows, cols/32],
// one E8M0 exponent per block (value = e2m1 code · 2^(scale − 127)).
// ggml: one 17-byte block per 32 elements: the E8M0 byte, then 16 bytes whose byte j holds element
// j (low nibble) and element j + 16 (high nibble). Codes and exponents are copied unchanged, so the
// values are bit-identical (llama.cpp's converter does the same reordering).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace kindred {

struct Mxfp4Stack {
    std::int64_t experts = 0;
    std::int64_t rows = 0;  // per expert
    std::int64_t cols = 0;
    std::vector<std::uint8_t> bytes;  // [experts x rows] ggml MXFP4 rows of cols / 32 blocks
};

// Rows first, first + step, ... of every expert (gpt-oss's fused gate_up interleaves gate rows
// (first 0, step 2) with up rows (first 1, step 2); step 1 takes all). Throws Error naming the
// tensor when either is not U8, their shapes disagree or are not [E, R, B, 16] / [E, R, B], the
// rows do not split by `step`, or a scale is 0xFF (E8M0's NaN).
Mxfp4Stack mxfp4_from_hf(const safetensors::TensorInfo& blocks, const safetensors::TensorInfo& scales,
                         std::int64_t first, std::int64_t step, const std::string& source);

}  // namespace kindred
