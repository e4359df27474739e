// core/dtype.h — the element types of stored tensors and their block layouts.
// Values are ggml's type ids so a GGUF tensor's type field converts without a lookup table;
// safetensors dtypes map onto the same enum (their names match ours, see dtype_from_name).
// Whether a type can be dequantized is recorded here as data; the code lives in kernels/.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace kindred {

enum class DType : std::uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
    // Not a ggml type: safetensors' U8. Its id sits far above ggml's range so that
    // dtype_from_ggml_id never yields it and a future ggml id cannot collide with it.
    U8 = 0x10000,
    // Not a ggml type either: bitsandbytes' NF4 with double quantization, laid out as bitsandbytes
    // keeps it (Nf4Layout below), made only by quantizing a checkpoint at load, never read from a file.
    NF4 = 0x10001,
};

struct DTypeInfo {
    std::string_view name;     // ggml's spelling ("Q4_1", "BF16"); also safetensors' for plain types
    std::uint32_t block_size;  // elements per block (1 for plain types)
    std::uint32_t block_bytes; // bytes per block
    bool dequantizable;        // kernels/dequantize_row supports it
    bool ggml;                 // a valid GGUF tensor type
};

// Throws Error for a value outside the enum (e.g. a cast from untrusted input).
const DTypeInfo& dtype_info(DType type);
inline std::string_view dtype_name(DType type) { return dtype_info(type).name; }
inline bool is_quantized(DType type) { return dtype_info(type).block_size > 1; }

// GGUF tensor type id -> DType; throws Error naming the id when ggml has no such type.
DType dtype_from_ggml_id(std::uint32_t id);
// By name as ggml and safetensors spell it ("F32", "Q4_K", "U8"); nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes taken by `elements` consecutive elements of `type`. Throws Error when `elements`
// is not a whole number of blocks or the byte count overflows 64 bits.
std::uint64_t row_bytes(DType type, std::uint64_t elements);

// NF4 is quantized per tensor (each matrix of an expert stack on its own), not per block: the 8-bit
// codes of its 64-element blocks' absmax values share one fp32 scale per 256 blocks of the flattened
// tensor, and one fp32 offset. A nested group straddles rows wherever a row is not a multiple of
// 256 blocks, so a row's bytes do not hold all it needs; the kernels find a block's parts by its
// flat index from the tensor's start. Byte offsets there of a tensor of `elements` elements:
//   [0, elements / 2)        the packed codes, element 2i in the high nibble of byte i
//   absmax_codes             one 8-bit code per block (row_bytes counts these and the codes: 33 bytes a block)
//   nested (4-byte aligned)  one fp32 absmax per 256 blocks, then the fp32 offset; `bytes` in all
// That is bitsandbytes' QuantState (weight, absmax, state2.absmax, offset): 4 + 8/64 + 32/(64·256)
// = 4.127 bits a weight, plus at most 3 bytes of padding and the 4-byte offset per tensor.
inline constexpr std::int64_t kNf4BlockSize = 64;         // elements per absmax (QLoRA's choice)
inline constexpr std::int64_t kNf4NestedBlockSize = 256;  // absmax values per nested fp32 absmax
struct Nf4Layout {
    std::uint64_t blocks = 0, groups = 0;  // 64-element blocks, 256-block nested groups
    std::uint64_t absmax_codes = 0, nested = 0, bytes = 0;
};
// Throws Error when `elements` is not a whole number of blocks.
Nf4Layout nf4_layout(std::uint64_t elements);

// Bytes of one matrix of `elements` elements stored in `type`: row_bytes, and for NF4 the rest of
// its layout (nested scales, offset, padding).
std::uint64_t matrix_bytes(DType type, std::uint64_t elements);
// Bytes of a tensor of `shape` (outermost first) stored in `type`; a 3-D tensor is a stack of
// shape[0] matrices. (A vector, not a span: the CUDA files include this header as C++17.)
std::uint64_t tensor_bytes(DType type, const std::vector<std::int64_t>& shape);

}  // namespace kindred
