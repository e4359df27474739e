#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/dequantize.h"
#include "kernels/nf4_dynamic_map.h"
// Byte-exactness with llama.cpp's reference quantizers (the golden compiles them without
// contraction too) needs every product and sum rounded on its own.
#include "kernels/cpu/exact_float.h"

namespace kindred {
namespace {

constexpr std::int64_t kQK_K = 256;
constexpr std::int64_t kSubBlock = 32;
constexpr std::int64_t kQ5_0Block = 32;
constexpr std::int64_t kQ8_0Block = 32;
// Elements dequantized into scratch at once: whole Q4_K super-blocks and NF4 blocks.
constexpr std::int64_t kChunk = 4096;

// Calls fn(block_begin, block_end, floats) over [0, blocks) on the thread pool, with floats holding
// the input's elements of those blocks in fp32, at most kChunk elements at a time.
template <typename F>
void for_each_chunk(DType type, const void* src, std::int64_t blocks, std::int64_t block_size, F&& fn) {
    const std::int64_t per_chunk = kChunk / block_size;
    thread_pool().parallel_for(blocks, per_chunk, [&](std::int64_t begin, std::int64_t end) {
        std::vector<float> floats(static_cast<std::size_t>(kChunk));
        for (std::int64_t b = begin; b < end; b += per_chunk) {
            const std::int64_t stop = std::min(end, b + per_chunk);
            const std::int64_t n = (stop - b) * block_size;
            dequantize_span(type, src, blocks * block_size, b * block_size, floats.data(), n);
            for (std::int64_t i = 0; i < n; ++i)
                if (!std::isfinite(floats[static_cast<std::size_t>(i)]))
                    fail("element {} is {}; only finite weights can be quantized", b * block_size + i,
                         floats[static_cast<std::size_t>(i)]);
            fn(b, stop, floats.data());
        }
    });
}

// Round to nearest, ties to even (ggml's nearest_int for the magnitudes that occur here).
int nearest_int(float value) { return static_cast<int>(std::nearbyint(value)); }

// Levels L[i] in [0, nmax] and (scale, min) with x ≈ scale * L + min, min <= 0, minimising the
// weighted squared error over a search of candidate scales (ggml's make_qkx2_quants with
// rmin = -1, rdelta = 0.1, nstep = 20, squared error). Returns scale; *negated_min = -min.
float fit_scale_min(const float* x, const float* weights, std::uint8_t* levels, float* negated_min) {
    constexpr int nmax = 15;
    constexpr float rmin = -1.0f, rdelta = 0.1f;
    constexpr int steps = 20;
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < kSubBlock; ++i) {
        min = std::min(min, x[i]);
        max = std::max(max, x[i]);
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        std::fill(levels, levels + kSubBlock, std::uint8_t{0});
        *negated_min = -min;
        return 0.0f;
    }
    const auto level_of = [&](float inverse_scale, float value) {
        return static_cast<std::uint8_t>(std::clamp(nearest_int(inverse_scale * (value - min)), 0, nmax));
    };
    float inverse_scale = nmax / (max - min);
    float scale = 1 / inverse_scale;
    float best_error = 0;
    for (int i = 0; i < kSubBlock; ++i) {
        levels[i] = level_of(inverse_scale, x[i]);
        const float diff = scale * levels[i] + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    std::uint8_t trial[kSubBlock];
    for (int step = 0; step <= steps; ++step) {
        inverse_scale = (rmin + rdelta * step + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < kSubBlock; ++i) {
            trial[i] = level_of(inverse_scale, x[i]);
            const float w = weights[i];
            const int l = trial[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float trial_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float trial_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (trial_min > 0) {
            trial_min = 0;
            trial_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < kSubBlock; ++i) {
            const float diff = trial_scale * trial[i] + trial_min - x[i];
            error += weights[i] * (diff * diff);
        }
        if (error < best_error) {
            std::copy(trial, trial + kSubBlock, levels);
            best_error = error;
            scale = trial_scale;
            min = trial_min;
        }
    }
    *negated_min = -min;
    return scale;
}

// One 256-element super-block: d:f16, dmin:f16, scales[12], qs[128] (144 bytes).
void quantize_block_q4_k(const float* x, std::uint8_t* block) {
    constexpr int subs = kQK_K / kSubBlock;
    std::uint8_t levels[kQK_K];
    float scales[subs], mins[subs], weights[kSubBlock];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < subs; ++j) {
        const float* xs = x + kSubBlock * j;
        float sum_x2 = 0;
        for (int l = 0; l < kSubBlock; ++l) sum_x2 += xs[l] * xs[l];
        const float rms = std::sqrt(sum_x2 / kSubBlock);
        // Larger elements weigh more in the fit: their error matters more to a dot product.
        for (int l = 0; l < kSubBlock; ++l) weights[l] = rms + std::fabs(xs[l]);
        scales[j] = fit_scale_min(xs, weights, levels + kSubBlock * j, &mins[j]);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    // 12 bytes of six-bit scales and mins: j < 4 in the low six bits of bytes j and j + 4; j >= 4
    // in the nibbles of byte j + 4 with their top two bits in the spare bits of bytes j - 4 and j.
    std::uint8_t* packed = block + 4;
    std::memset(packed, 0, 12);
    const float inverse_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inverse_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::uint8_t six_bit_scale[subs], six_bit_min[subs];
    for (int j = 0; j < subs; ++j) {
        const auto ls = static_cast<std::uint8_t>(std::min(63, nearest_int(inverse_scale * scales[j])));
        const auto lm = static_cast<std::uint8_t>(std::min(63, nearest_int(inverse_min * mins[j])));
        six_bit_scale[j] = ls;
        six_bit_min[j] = lm;
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = static_cast<std::uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= static_cast<std::uint8_t>((ls >> 4) << 6);
            packed[j] |= static_cast<std::uint8_t>((lm >> 4) << 6);
        }
    }
    const std::uint16_t d_bits = fp32_to_fp16(max_scale / 63.f);
    const std::uint16_t dmin_bits = fp32_to_fp16(max_min / 63.f);
    std::memcpy(block, &d_bits, 2);
    std::memcpy(block + 2, &dmin_bits, 2);
    // Requantize against the scales as stored (fp16 d times six-bit factors), as dequantization sees them.
    for (int j = 0; j < subs; ++j) {
        const float d = fp16_to_fp32(d_bits) * six_bit_scale[j];
        if (d == 0) continue;
        const float dm = fp16_to_fp32(dmin_bits) * six_bit_min[j];
        for (int i = 0; i < kSubBlock; ++i)
            levels[kSubBlock * j + i] =
                static_cast<std::uint8_t>(std::clamp(nearest_int((x[kSubBlock * j + i] + dm) / d), 0, 15));
    }
    // Per 64 elements, 32 bytes: element l in the low nibble, element l + 32 in the high.
    std::uint8_t* qs = block + 16;
    for (int j = 0; j < kQK_K; j += 64, qs += 32)
        for (int l = 0; l < 32; ++l) qs[l] = static_cast<std::uint8_t>(levels[j + l] | (levels[j + l + 32] << 4));
}

// One 32-element block: d:f16, qh[4] (bit j: fifth bit of element j), qs[16] (22 bytes).
void quantize_block_q5_0(const float* x, std::uint8_t* block) {
    float largest_magnitude = 0.0f, extreme = 0.0f;  // the first element of the largest magnitude
    for (int i = 0; i < kQ5_0Block; ++i) {
        if (largest_magnitude < std::fabs(x[i])) {
            largest_magnitude = std::fabs(x[i]);
            extreme = x[i];
        }
    }
    const float d = extreme / -16;
    const float inverse = d != 0 ? 1.0f / d : 0.0f;
    const std::uint16_t d_bits = fp32_to_fp16(d);
    std::memcpy(block, &d_bits, 2);
    std::uint32_t fifth_bits = 0;
    std::uint8_t* qs = block + 6;
    for (int j = 0; j < kQ5_0Block / 2; ++j) {
        // x * inverse lies in [-16, 16]; + 16.5 truncated is the nearest level of 0..32, 32 capped.
        const auto level = [&](float value) {
            return static_cast<std::uint8_t>(std::min(31, static_cast<int>(static_cast<std::int8_t>(value * inverse + 16.5f))));
        };
        const std::uint8_t first = level(x[j]), second = level(x[j + kQ5_0Block / 2]);
        qs[j] = static_cast<std::uint8_t>((first & 0x0F) | ((second & 0x0F) << 4));
        fifth_bits |= static_cast<std::uint32_t>((first & 0x10u) >> 4) << j;
        fifth_bits |= static_cast<std::uint32_t>((second & 0x10u) >> 4) << (j + kQ5_0Block / 2);
    }
    std::memcpy(block + 2, &fifth_bits, 4);
}

// Index of the bucket of `scaled` among the codebook's midpoints, a value on a midpoint taking the
// lower code (torch.bucketize, right=False, as bitsandbytes quantizes NF4).
std::uint8_t nf4_code(float scaled) {
    static const std::array<float, 15> midpoints = [] {
        std::array<float, 15> m{};
        for (std::size_t i = 0; i < m.size(); ++i) m[i] = (kNf4Codebook[i] + kNf4Codebook[i + 1]) / 2;
        return m;
    }();
    return static_cast<std::uint8_t>(std::lower_bound(midpoints.begin(), midpoints.end(), scaled) - midpoints.begin());
}

// The nearest entry of the dynamic map to `normed` in [-1, 1], the lower one on a tie, as
// bitsandbytes' CPU quantize_blockwise finds it (its search treats the first entry as -1).
std::uint8_t dynamic_code(float normed) {
    static const std::array<float, 256> code = [] {
        std::array<float, 256> c = nf4_absmax_code();
        c[0] = -1.0f;
        return c;
    }();
    const auto above = std::upper_bound(code.begin(), code.end(), normed);
    std::int64_t index = std::max<std::int64_t>(0, (above - code.begin()) - 1);
    if (index < 255 && std::fabs(normed - code[static_cast<std::size_t>(index + 1)]) <
                           std::fabs(normed - code[static_cast<std::size_t>(index)]))
        ++index;
    return static_cast<std::uint8_t>(index);
}

void require_multiple(std::int64_t n, std::int64_t block, std::string_view format) {
    if (n < 0 || n % block != 0) fail("{} elements are not a whole number of {}-element {} blocks", n, block, format);
}

// Blocks of `target` (whose blocks are independent, as ggml's are) from `n` elements of `type`.
void quantize_ggml_blocks(DType type, const void* src, void* dst, std::int64_t n, DType target,
                          void (*quantize_block)(const float*, std::uint8_t*)) {
    const DTypeInfo& info = dtype_info(target);
    const auto block = static_cast<std::int64_t>(info.block_size);
    require_multiple(n, block, info.name);
    auto* out = static_cast<std::uint8_t*>(dst);
    for_each_chunk(type, src, n / block, block, [&](std::int64_t begin, std::int64_t end, const float* x) {
        for (std::int64_t b = begin; b < end; ++b)
            quantize_block(x + (b - begin) * block, out + static_cast<std::size_t>(b) * info.block_bytes);
    });
}

}  // namespace

const std::array<float, 256>& nf4_absmax_code() {
    static constexpr std::array<float, 127> positive = {KINDRED_NF4_DYNAMIC_MAP_POSITIVE};
    static const std::array<float, 256> code = [] {
        std::array<float, 256> c{};
        std::size_t at = 0;
        for (auto it = positive.rbegin(); it != positive.rend(); ++it) c[at++] = -*it;
        c[at++] = 0.0f;
        for (const float value : positive) c[at++] = value;
        c[at] = 1.0f;
        return c;
    }();
    return code;
}

void quantize_q4_k(DType type, const void* src, void* dst, std::int64_t n) {
    quantize_ggml_blocks(type, src, dst, n, DType::Q4_K, quantize_block_q4_k);
}

void quantize_q5_0(DType type, const void* src, void* dst, std::int64_t n) {
    quantize_ggml_blocks(type, src, dst, n, DType::Q5_0, quantize_block_q5_0);
}

void quantize_row_q8_0(const float* src, void* dst, std::int64_t n) {
    require_multiple(n, kQ8_0Block, "Q8_0");
    auto* block = static_cast<std::uint8_t*>(dst);
    for (const float* x = src; x < src + n; x += kQ8_0Block, block += dtype_info(DType::Q8_0).block_bytes) {
        float amax = 0.0f;
        for (int i = 0; i < kQ8_0Block; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127;
        const float inverse = d != 0 ? 1.0f / d : 0.0f;
        const std::uint16_t d_bits = fp32_to_fp16(d);
        std::memcpy(block, &d_bits, 2);
        for (int i = 0; i < kQ8_0Block; ++i)
            block[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::round(x[i] * inverse)));
    }
}

Nf4State quantize_nf4(DType type, const void* src, std::int64_t n) {
    require_multiple(n, kNf4BlockSize, "NF4");
    Nf4State state;
    state.elements = n;
    const std::int64_t blocks = n / kNf4BlockSize;
    state.packed.resize(static_cast<std::size_t>(n / 2));
    std::vector<float> absmax(static_cast<std::size_t>(blocks));
    for_each_chunk(type, src, blocks, kNf4BlockSize, [&](std::int64_t begin, std::int64_t end, const float* x) {
        for (std::int64_t b = begin; b < end; ++b) {
            const float* xb = x + (b - begin) * kNf4BlockSize;
            float largest = 0.0f;
            for (std::int64_t i = 0; i < kNf4BlockSize; ++i) largest = std::max(largest, std::fabs(xb[i]));
            absmax[static_cast<std::size_t>(b)] = largest;
            const float inverse = 1.0f / std::max(largest, 1e-38f);  // bitsandbytes clamps a zero absmax
            std::uint8_t* bytes = state.packed.data() + b * kNf4BlockSize / 2;
            for (std::int64_t i = 0; i < kNf4BlockSize; i += 2) {
                const auto high = nf4_code(std::clamp(xb[i] * inverse, -1.0f, 1.0f));
                const auto low = nf4_code(std::clamp(xb[i + 1] * inverse, -1.0f, 1.0f));
                bytes[i / 2] = static_cast<std::uint8_t>((high << 4) | low);
            }
        }
    });
    // torch's fp32 mean sums in another order; the double sum lands within an ulp or two of it.
    double sum = 0.0;
    for (const float value : absmax) sum += value;
    state.offset = static_cast<float>(sum / static_cast<double>(blocks));
    const std::int64_t groups = (blocks + kNf4NestedBlockSize - 1) / kNf4NestedBlockSize;
    state.absmax_q.resize(static_cast<std::size_t>(blocks));
    state.absmax2.resize(static_cast<std::size_t>(groups));
    for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t begin = g * kNf4NestedBlockSize, end = std::min(blocks, begin + kNf4NestedBlockSize);
        float largest = 0.0f;
        for (std::int64_t b = begin; b < end; ++b)
            largest = std::max(largest, std::fabs(absmax[static_cast<std::size_t>(b)] - state.offset));
        state.absmax2[static_cast<std::size_t>(g)] = largest;
        for (std::int64_t b = begin; b < end; ++b) {
            // A group of equal absmax values has nothing to scale: code 0 for each (bitsandbytes
            // divides 0 by 0 there); its blocks restore to the offset, their one value.
            const float centred = absmax[static_cast<std::size_t>(b)] - state.offset;
            state.absmax_q[static_cast<std::size_t>(b)] = largest > 0 ? dynamic_code(centred / largest) : dynamic_code(0.0f);
        }
    }
    return state;
}

std::vector<float> nf4_absmax(const Nf4State& state) {
    const auto& code = nf4_absmax_code();
    std::vector<float> absmax(state.absmax_q.size());
    for (std::size_t b = 0; b < absmax.size(); ++b)
        absmax[b] = code[state.absmax_q[b]] * state.absmax2[b / kNf4NestedBlockSize] + state.offset;
    return absmax;
}

void nf4_pack(const Nf4State& state, void* dst) {
    const Nf4Layout layout = nf4_layout(static_cast<std::uint64_t>(state.elements));
    auto* out = static_cast<std::uint8_t*>(dst);
    std::memset(out, 0, layout.bytes);  // the padding before the nested scales
    std::memcpy(out, state.packed.data(), state.packed.size());
    std::memcpy(out + layout.absmax_codes, state.absmax_q.data(), state.absmax_q.size());
    std::memcpy(out + layout.nested, state.absmax2.data(), state.absmax2.size() * sizeof(float));
    std::memcpy(out + layout.nested + state.absmax2.size() * sizeof(float), &state.offset, sizeof(float));
}

}  // namespace kindred
