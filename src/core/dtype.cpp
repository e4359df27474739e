#include "core/dtype.h"

#include <array>
#include <limits>

#include "core/error.h"

namespace kindred {
namespace {

struct Entry {
    DType type;
    DTypeInfo info;
};

// Block sizes and byte counts follow ggml's type traits (ggml-common.h block structs).
constexpr std::array kTable{
    Entry{DType::F32, {"F32", 1, 4, true, true}},
    Entry{DType::F16, {"F16", 1, 2, true, true}},
    Entry{DType::Q4_0, {"Q4_0", 32, 18, true, true}},
    Entry{DType::Q4_1, {"Q4_1", 32, 20, true, true}},
    Entry{DType::Q5_0, {"Q5_0", 32, 22, true, true}},
    Entry{DType::Q5_1, {"Q5_1", 32, 24, false, true}},
    Entry{DType::Q8_0, {"Q8_0", 32, 34, true, true}},
    // ggml stores d and s as two halves (36 bytes); gguf-py still says 40, from the older layout.
    Entry{DType::Q8_1, {"Q8_1", 32, 36, false, true}},
    Entry{DType::Q2_K, {"Q2_K", 256, 84, false, true}},
    Entry{DType::Q3_K, {"Q3_K", 256, 110, false, true}},
    Entry{DType::Q4_K, {"Q4_K", 256, 144, true, true}},
    Entry{DType::Q5_K, {"Q5_K", 256, 176, false, true}},
    Entry{DType::Q6_K, {"Q6_K", 256, 210, true, true}},
    Entry{DType::Q8_K, {"Q8_K", 256, 292, false, true}},
    Entry{DType::IQ2_XXS, {"IQ2_XXS", 256, 66, false, true}},
    Entry{DType::IQ2_XS, {"IQ2_XS", 256, 74, false, true}},
    Entry{DType::IQ3_XXS, {"IQ3_XXS", 256, 98, false, true}},
    Entry{DType::IQ1_S, {"IQ1_S", 256, 50, false, true}},
    Entry{DType::IQ4_NL, {"IQ4_NL", 32, 18, false, true}},
    Entry{DType::IQ3_S, {"IQ3_S", 256, 110, false, true}},
    Entry{DType::IQ2_S, {"IQ2_S", 256, 82, false, true}},
    Entry{DType::IQ4_XS, {"IQ4_XS", 256, 136, false, true}},
    Entry{DType::I8, {"I8", 1, 1, false, true}},
    Entry{DType::I16, {"I16", 1, 2, false, true}},
    Entry{DType::I32, {"I32", 1, 4, false, true}},
    Entry{DType::I64, {"I64", 1, 8, false, true}},
    Entry{DType::F64, {"F64", 1, 8, false, true}},
    Entry{DType::IQ1_M, {"IQ1_M", 256, 56, false, true}},
    Entry{DType::BF16, {"BF16", 1, 2, true, true}},
    Entry{DType::TQ1_0, {"TQ1_0", 256, 54, false, true}},
    Entry{DType::TQ2_0, {"TQ2_0", 256, 66, false, true}},
    Entry{DType::MXFP4, {"MXFP4", 32, 17, true, true}},
    Entry{DType::NVFP4, {"NVFP4", 64, 36, false, true}},
    Entry{DType::Q1_0, {"Q1_0", 128, 18, false, true}},
    Entry{DType::U8, {"U8", 1, 1, false, false}},
    Entry{DType::NF4, {"NF4", 64, 33, true, false}},  // qs[32] and the absmax code; per tensor: Nf4Layout
};

// dtype_info sits on the per-row path of matmul and dequantize, so ids index a table
// instead of searching kTable.
constexpr std::size_t kMaxGgmlId = 64;
constexpr std::array<int, kMaxGgmlId> kByGgmlId = [] {
    std::array<int, kMaxGgmlId> by_id{};
    by_id.fill(-1);
    for (std::size_t i = 0; i < kTable.size(); ++i) {
        const auto id = static_cast<std::uint32_t>(kTable[i].type);
        if (id < kMaxGgmlId) by_id[id] = static_cast<int>(i);
    }
    return by_id;
}();

const Entry* lookup(DType type) {
    const auto id = static_cast<std::uint32_t>(type);
    if (id < kMaxGgmlId) return kByGgmlId[id] < 0 ? nullptr : &kTable[static_cast<std::size_t>(kByGgmlId[id])];
    // NF4, outside ggml's ids, is asked for on every row a kernel reads: found without a search.
    static_assert(kTable.back().type == DType::NF4);
    if (type == DType::NF4) return &kTable.back();
    for (const Entry& entry : kTable) {
        if (entry.type == type) return &entry;
    }
    return nullptr;
}

}  // namespace

const DTypeInfo& dtype_info(DType type) {
    const Entry* entry = lookup(type);
    if (entry == nullptr) fail("unknown tensor type id {}", static_cast<std::uint32_t>(type));
    return entry->info;
}

DType dtype_from_ggml_id(std::uint32_t id) {
    const Entry* entry = lookup(static_cast<DType>(id));
    if (entry == nullptr || !entry->info.ggml) fail("unknown ggml tensor type id {}", id);
    return entry->type;
}

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const Entry& entry : kTable) {
        if (entry.info.name == name) return entry.type;
    }
    return std::nullopt;
}

std::uint64_t row_bytes(DType type, std::uint64_t elements) {
    const DTypeInfo& info = dtype_info(type);
    if (elements % info.block_size != 0) {
        fail("{} elements of type {} are not a whole number of {}-element blocks", elements, info.name,
             info.block_size);
    }
    const std::uint64_t blocks = elements / info.block_size;
    if (blocks > std::numeric_limits<std::uint64_t>::max() / info.block_bytes) {
        fail("{} elements of type {} overflow a 64-bit byte count", elements, info.name);
    }
    return blocks * info.block_bytes;
}

// Arithmetic only (no table lookup): the kernels ask for it on every row they read.
Nf4Layout nf4_layout(std::uint64_t elements) {
    constexpr auto block = static_cast<std::uint64_t>(kNf4BlockSize);
    constexpr auto nested = static_cast<std::uint64_t>(kNf4NestedBlockSize);
    if (elements % block != 0)
        fail("{} elements of type NF4 are not a whole number of {}-element blocks", elements, block);
    Nf4Layout layout;
    layout.blocks = elements / block;
    layout.groups = (layout.blocks + nested - 1) / nested;
    layout.absmax_codes = elements / 2;
    layout.nested = (layout.absmax_codes + layout.blocks + 3) / 4 * 4;
    layout.bytes = layout.nested + 4 * (layout.groups + 1);
    return layout;
}

std::uint64_t matrix_bytes(DType type, std::uint64_t elements) {
    return type == DType::NF4 ? nf4_layout(elements).bytes : row_bytes(type, elements);
}

std::uint64_t tensor_bytes(DType type, const std::vector<std::int64_t>& shape) {
    std::uint64_t elements = 1;
    for (const std::int64_t d : shape) elements *= static_cast<std::uint64_t>(d);
    if (type != DType::NF4 || shape.size() < 3) return matrix_bytes(type, elements);
    const auto matrices = static_cast<std::uint64_t>(shape[0]);
    return matrices * matrix_bytes(type, matrices == 0 ? 0 : elements / matrices);
}

}  // namespace kindred
