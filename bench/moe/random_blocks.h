// bench/moe/random_blocks.h — random but sane contents for the stored types of a shape-true GGUF
// (make_shape_true.cpp): every quantized type dequantizes to zero-mean values of a small, fixed
// scale and norms sit near 1, so a forward computes finite numbers and tokens whose embeddings are
// independent stay independent (a router then spreads them over the experts as a trained one does;
// weights with a common offset would make every hidden state alike and route every token to the
// same few experts, which would understate what prefill and training cost).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"

// Fills whole blocks of one type; `bytes` starts on a block boundary. Deterministic (xorshift64*).
class RandomBlocks {
public:
    void fill(kindred::DType type, std::span<std::uint8_t> bytes, bool norm) {
        const auto& info = kindred::dtype_info(type);
        for (std::size_t at = 0; at < bytes.size(); at += info.block_bytes)
            block(type, bytes.subspan(at, info.block_bytes), norm);
    }

private:
    std::uint64_t next() {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return state_ * 0x2545F4914F6CDD1DULL;
    }
    float uniform() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }
    void random_bytes(std::span<std::uint8_t> out) {
        for (std::size_t i = 0; i < out.size(); i += 8) {
            const std::uint64_t r = next();
            std::memcpy(out.data() + i, &r, std::min<std::size_t>(8, out.size() - i));
        }
    }
    static void put_half(std::uint8_t* at, float value) {
        const std::uint16_t h = kindred::fp32_to_fp16(value);
        std::memcpy(at, &h, 2);
    }
    void block(kindred::DType type, std::span<std::uint8_t> b, bool norm) {
        using kindred::DType;
        switch (type) {
            case DType::F32: {
                const float value = norm ? 1.0f + 0.1f * uniform() : 0.05f * uniform();
                std::memcpy(b.data(), &value, 4);
                return;
            }
            case DType::MXFP4:  // E8M0 scale 2^-5..2^-3, random e2m1 codes (sign bit included: zero mean)
                random_bytes(b);
                b[0] = static_cast<std::uint8_t>(122 + next() % 3);
                return;
            case DType::Q8_0:  // fp16 scale, 32 signed int8 codes
                random_bytes(b);
                put_half(b.data(), 0.0005f);
                return;
            case DType::Q4_K:
                // fp16 d and dmin, random 6-bit scales s and mins m, 4-bit codes q: x = d·s·q - dmin·m.
                // Codes average 7.5 and s and m have one distribution, so dmin = 7.5·d makes x zero-mean
                // (with dmin = d every value carried an offset as large as its spread).
                random_bytes(b);
                put_half(b.data(), 0.0005f);
                put_half(b.data() + 2, 7.5f * 0.0005f);
                return;
            case DType::Q6_K:  // 6-bit codes stored with +32 (zero mean), signed int8 scales, fp16 d last
                random_bytes(b);
                put_half(b.data() + 208, 0.0001f);
                return;
            default: kindred::fail("no random filler for type {}", kindred::dtype_name(type));
        }
    }
    std::uint64_t state_ = 0x9E3779B97F4A7C15ULL;
};
