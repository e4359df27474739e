// formats/hf_mxfp4.cpp — HF MXFP4 blocks and scales into ggml MXFP4 blocks (see hf_mxfp4.h).
#include "formats/hf_mxfp4.h"

#include <fmt/ranges.h>

#include "core/error.h"

namespace kindred {

Mxfp4Stack mxfp4_from_hf(const safetensors::TensorInfo& blocks, const safetensors::TensorInfo& scales,
                         std::int64_t first, std::int64_t step, const std::string& source) {
    for (const auto* tensor : {&blocks, &scales})
        if (tensor->type != DType::U8)
            fail("{}: MXFP4 tensor '{}' has type {}, expected U8", source, tensor->name, dtype_name(tensor->type));
    const auto& b = blocks.shape;
    const auto& s = scales.shape;
    if (b.size() != 4 || b[3] != 16 || s.size() != 3 || b[0] != s[0] || b[1] != s[1] || b[2] != s[2])
        fail("{}: MXFP4 tensors '{}' [{}] and '{}' [{}] are not [experts, rows, blocks, 16] and [experts, rows, blocks]",
             source, blocks.name, fmt::join(b, ", "), scales.name, fmt::join(s, ", "));
    const auto experts = static_cast<std::int64_t>(b[0]), rows = static_cast<std::int64_t>(b[1]);
    const auto row_blocks = static_cast<std::int64_t>(b[2]);
    if (step <= 0 || first < 0 || first >= step || rows % step != 0)
        fail("{}: MXFP4 tensor '{}' has {} rows, which do not split into {} interleaved parts", source, blocks.name,
             rows, step);
    Mxfp4Stack stack;
    stack.experts = experts;
    stack.rows = rows / step;
    stack.cols = row_blocks * 32;
    stack.bytes.resize(static_cast<std::size_t>(experts * stack.rows * row_blocks * 17));
    std::uint8_t* out = stack.bytes.data();
    for (std::int64_t e = 0; e < experts; ++e)
        for (std::int64_t r = first; r < rows; r += step)
            for (std::int64_t k = 0; k < row_blocks; ++k, out += 17) {
                const std::int64_t block = (e * rows + r) * row_blocks + k;
                const std::uint8_t scale = scales.data[static_cast<std::size_t>(block)];
                if (scale == 0xFF)
                    fail("{}: MXFP4 tensor '{}' expert {} row {} block {} has scale 0xFF (NaN in E8M0)", source,
                         scales.name, e, r, k);
                const std::uint8_t* codes = blocks.data.data() + block * 16;
                // Element i of the block: nibble i % 2 of HF byte i / 2.
                auto code = [&](int i) { return (codes[i / 2] >> (4 * (i % 2))) & 0x0F; };
                out[0] = scale;
                for (int j = 0; j < 16; ++j) out[1 + j] = static_cast<std::uint8_t>(code(j) | (code(j + 16) << 4));
            }
    return stack;
}

}  // namespace kindred
