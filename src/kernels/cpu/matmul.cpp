// kernels/cpu/matmul.cpp — matmul_forward and embedding_forward on the CPU (see kernels/matmul.h).
// The fp32 decode path has fused dequantize-dot loops for the types the shipped models use (F32,
// F16, BF16, Q4_0, Q4_1, Q8_0); any other dequantizable type dequantizes one row at a time into
// scratch first. Precision::Int8's path is int8_matvec (kernels/cpu/int8_dot.h). Accumulation is fp32 throughout; block scales multiply per-block partial sums.
#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/int8_dot.h"
#include "kernels/cpu/matmul_bf16.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"
#include "kernels/dequantize.h"

namespace kindred::kernels {
namespace {

using cpu::dot;

// Below this many tokens the mat-vec path re-reads each weight row per token, which costs less
// than dequantizing it into a panel; from here on sgemm's blocking wins.
constexpr std::int64_t panel_min_tokens = 4;
// Rows handed to one thread at a time in the mat-vec path; a multiple of the unroll below.
constexpr std::int64_t matvec_grain = 16;
// Tokens per thread at least when activations are quantized to 8 bits (fewer are not worth a region).
constexpr std::int64_t quantize_grain = 32;
// Rows between the one being read and the one being prefetched in the mat-vec path.
constexpr std::int64_t prefetch_rows = 4;
// Panel sizing: about 256 KiB of fp32 weights, so that a panel stays in L2 while sgemm reads it.
constexpr std::int64_t panel_floats = 256 * 1024;

// Bytes from one row's start to the next's, as the fused and integer dots and the prefetcher walk
// them. NF4 rows are not self-contained (core/dtype.h's Nf4Layout): this is the stride of their
// codes, which lie together at the tensor's start; their scales are read by dequantize_span.
std::int64_t checked_row_stride(const Matrix& w) {
    if (w.rows < 0 || w.cols <= 0) fail("matmul: bad weight shape {} x {}", w.rows, w.cols);
    const auto& info = dtype_info(w.type);
    if (!info.dequantizable && w.type != DType::F32)
        fail("matmul: weights of type {} cannot be dequantized", info.name);
    const auto bytes = static_cast<std::int64_t>(row_bytes(w.type, static_cast<std::uint64_t>(w.cols)));
    return w.type == DType::NF4 ? w.cols / 2 : bytes;
}

// Columns [c0, c0 + width) of row r of w, dequantized into dst.
void dequantize_weight_row(const Matrix& w, std::int64_t r, std::int64_t c0, std::int64_t width, float* dst) {
    dequantize_span(w.type, w.data, w.rows * w.cols, r * w.cols + c0, dst, width);
}

// Per-thread buffers that grow to the largest size seen and are then reused, so that a decode
// step allocates nothing. Two kinds, because the calling thread holds block sums while it also
// dequantizes rows.
enum class Scratch { Rows, BlockSums };

// The bf16 counterparts: one buffer for a product's rounded activations (the calling thread's,
// read by every thread of the product) and one per thread for its packed weight panel.
enum class Bf16Scratch { Activations, Packed };

bool use_bf16(Precision precision) { return effective_precision(precision) == Precision::BF16; }

// x [tokens x cols] rounded to bf16 rows of stride round_up(cols, 32).
const std::uint16_t* rounded_activations(const float* x, std::int64_t tokens, std::int64_t cols) {
    const std::int64_t lda = cpu::bf16::round_up(cols, cpu::bf16::block_k);
    std::uint16_t* x16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Activations>(tokens * lda);
    cpu::bf16::round_rows_parallel(x16, lda, x, cols, tokens, cols);
    return x16;
}

// Rows [r0, r0 + n) of w as fp32 with row stride `stride`: in place for F32 weights, else
// dequantized (columns [c0, c0 + width)) into the calling thread's scratch.
const float* weight_panel(const Matrix& w, std::int64_t stride_bytes, std::int64_t r0, std::int64_t n, std::int64_t c0,
                          std::int64_t width, std::int64_t& stride) {
    const auto* base = static_cast<const std::uint8_t*>(w.data);
    if (w.type == DType::F32) {
        stride = w.cols;
        return reinterpret_cast<const float*>(base + r0 * stride_bytes) + c0;
    }
    float* scratch = cpu::thread_scratch<float, Scratch::Rows>(n * width);
    for (std::int64_t r = 0; r < n; ++r) dequantize_weight_row(w, r0 + r, c0, width, scratch + r * width);
    stride = width;
    return scratch;
}

#ifdef KINDRED_AVX2

// ggml block layouts: fp16 scale (and min for Q4_1), then 32 quants. A Q4 byte j holds element j
// in its low nibble and element j + 16 in its high nibble.
constexpr std::int64_t qk = 32;

// Σ over 32 elements of float(q[i]) * x[i] for 32 unsigned nibble values.
inline __m256 nibble_block_dot(const std::uint8_t* qs, const float* x) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i mask = _mm_set1_epi8(0x0f);
    const __m128i low = _mm_and_si128(packed, mask);
    const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
    __m256 sum = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(low)), _mm256_loadu_ps(x));
    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(low, 8))), _mm256_loadu_ps(x + 8), sum);
    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(high)), _mm256_loadu_ps(x + 16), sum);
    sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(high, 8))), _mm256_loadu_ps(x + 24),
                          sum);
    return sum;
}

// Q4_0: value = (q - 8) * d, so a block contributes d * (Σ q x - 8 Σ x); block sums of x come in.
float dot_q4_0(const std::uint8_t* row, const float* x, const float* x_block_sums, std::int64_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    float offset = 0.0f;
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::uint8_t* block = row + b * 18;
        const float d = ggml_blocks::load_half(block);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), nibble_block_dot(block + 2, x + b * qk), acc);
        offset += d * x_block_sums[b];
    }
    return cpu::hsum(acc) - 8.0f * offset;
}

// Q4_1: value = q * d + m, so a block contributes d * Σ q x + m * Σ x.
float dot_q4_1(const std::uint8_t* row, const float* x, const float* x_block_sums, std::int64_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    float offset = 0.0f;
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::uint8_t* block = row + b * 20;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ggml_blocks::load_half(block)), nibble_block_dot(block + 4, x + b * qk), acc);
        offset += ggml_blocks::load_half(block + 2) * x_block_sums[b];
    }
    return cpu::hsum(acc) + offset;
}

float dot_q8_0(const std::uint8_t* row, const float* x, std::int64_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t b = 0; b < blocks; ++b) {
        const std::uint8_t* block = row + b * 34;
        const float* xb = x + b * qk;
        __m256 sum = _mm256_setzero_ps();
        for (int i = 0; i < 32; i += 8) {
            const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block + 2 + i));
            sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(xb + i), sum);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ggml_blocks::load_half(block)), sum, acc);
    }
    return cpu::hsum(acc);
}

float dot_f16(const std::uint8_t* row, const float* x, std::int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(x + i), acc);
    }
    float total = cpu::hsum(acc);
    for (; i < n; ++i) total += ggml_blocks::load_half(row + 2 * i) * x[i];
    return total;
}

float dot_bf16(const std::uint8_t* row, const float* x, std::int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
        const __m256 w = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), acc);
    }
    float total = cpu::hsum(acc);
    for (; i < n; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, row + 2 * i, sizeof bits);
        total += bf16_to_fp32(bits) * x[i];
    }
    return total;
}

bool has_fused_dot(DType type) {
    switch (type) {
        case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1: case DType::Q8_0:
            return true;
        default:
            return false;
    }
}

#else

bool has_fused_dot(DType type) { return type == DType::F32; }

#endif

// Decode is bound by streaming weights from memory: the mat-vec paths ask for a row a few rows
// ahead so that more loads are in flight than the hardware prefetcher issues on its own.
inline void prefetch_row([[maybe_unused]] const std::uint8_t* row, [[maybe_unused]] std::int64_t bytes) {
#ifdef KINDRED_AVX2
    for (std::int64_t offset = 0; offset < bytes; offset += 64)
        _mm_prefetch(reinterpret_cast<const char*>(row + offset), _MM_HINT_T0);
#endif
}

// The mat-vec path: each thread takes whole rows; every row is dotted with all (few) tokens
// while its bytes are in L1.
void matvec(float* y, const float* x, const Matrix& w, std::int64_t tokens, std::int64_t row_stride) {
    const auto* base = static_cast<const std::uint8_t*>(w.data);
    const std::int64_t cols = w.cols;
    // Per-token block sums of x for the Q4 formats' offset terms, computed once for all rows.
    const bool needs_block_sums = w.type == DType::Q4_0 || w.type == DType::Q4_1;
    const std::int64_t blocks = cols / 32;
    float* block_sums = needs_block_sums ? cpu::thread_scratch<float, Scratch::BlockSums>(tokens * blocks) : nullptr;
    if (needs_block_sums) {
        for (std::int64_t t = 0; t < tokens; ++t)
            for (std::int64_t b = 0; b < blocks; ++b) {
                float sum = 0.0f;
                for (std::int64_t i = 0; i < 32; ++i) sum += x[t * cols + b * 32 + i];
                block_sums[t * blocks + b] = sum;
            }
    }
    const bool fused = has_fused_dot(w.type);
    thread_pool().parallel_for(w.rows, matvec_grain, [&](std::int64_t begin, std::int64_t end) {
        float* row_floats = fused ? nullptr : cpu::thread_scratch<float, Scratch::Rows>(cols);
        for (std::int64_t r = begin; r < end; ++r) {
            const std::uint8_t* row = base + r * row_stride;
            if (r + prefetch_rows < end) prefetch_row(row + prefetch_rows * row_stride, row_stride);
            if (!fused) dequantize_weight_row(w, r, 0, cols, row_floats);
            for (std::int64_t t = 0; t < tokens; ++t) {
                const float* xt = x + t * cols;
                float value;
                if (!fused) {
                    value = dot(row_floats, xt, cols);
                } else {
                    switch (w.type) {
#ifdef KINDRED_AVX2
                        case DType::F16: value = dot_f16(row, xt, cols); break;
                        case DType::BF16: value = dot_bf16(row, xt, cols); break;
                        case DType::Q4_0: value = dot_q4_0(row, xt, block_sums + t * blocks, blocks); break;
                        case DType::Q4_1: value = dot_q4_1(row, xt, block_sums + t * blocks, blocks); break;
                        case DType::Q8_0: value = dot_q8_0(row, xt, blocks); break;
#endif
                        default: value = dot(reinterpret_cast<const float*>(row), xt, cols); break;
                    }
                }
                y[t * w.rows + r] = value;
            }
        }
    });
}

// The 8-bit path: the tokens' activations are quantized once, then each thread takes whole rows:
// 16 at a time into AMX-INT8 tiles where the CPU has them and there are more than a few tokens,
// otherwise one at a time, each row unpacked once and dotted with every token (int8_dot.h; both
// give the same bits).
void int8_matvec(float* y, const float* x, const Matrix& w, std::int64_t tokens, std::int64_t row_stride) {
    thread_local cpu::int8::QuantizedRows quantized;
    // A name inside the lambdas would be each worker's own thread_local; this one is the caller's.
    cpu::int8::QuantizedRows& activations = quantized;
    activations.shape(tokens, w.cols);
    thread_pool().parallel_for(tokens, quantize_grain, [&](std::int64_t begin, std::int64_t end) {
        activations.quantize_tokens(x, begin, end - begin);
    });
    const auto* base = static_cast<const std::uint8_t*>(w.data);
    if (cpu::int8::use_tiles(w.type, tokens)) {
        thread_local cpu::int8::TileRows tile_rows;
        thread_pool().parallel_for(w.rows, matvec_grain, [&](std::int64_t begin, std::int64_t end) {
            cpu::int8::dot_tiles(w.type, base + begin * row_stride, row_stride, end - begin, activations, y + begin,
                                 w.rows, tile_rows);
        });
        return;
    }
    thread_pool().parallel_for(w.rows, matvec_grain, [&](std::int64_t begin, std::int64_t end) {
        thread_local cpu::int8::UnpackedRow unpacked;
        for (std::int64_t r = begin; r < end; ++r) {
            const std::uint8_t* row = base + r * row_stride;
            if (r + prefetch_rows < end) prefetch_row(row + prefetch_rows * row_stride, row_stride);
            cpu::int8::dot_row(w.type, row, activations, y + r, w.rows, unpacked);
        }
    });
}

// An input gradient's work items: (token block, column chunk) pairs. Column chunks are whole
// multiples of `block` columns (a weight block, or a packed operand's column block), as wide as
// one chunk per thread allows (a product is most efficient on wide outputs) but at least 64; when
// that leaves fewer items than threads (576 columns on 16 threads), tokens are split too, each
// token block dequantizing its own panels (a few operations per weight against 2 · block_tokens
// flops per weight).
class InputGradientItems {
public:
    struct Item {
        std::int64_t t0, tokens, c0, width;
    };
    InputGradientItems(std::int64_t tokens, std::int64_t cols, std::int64_t block) : tokens_(tokens), cols_(cols) {
        const std::int64_t threads = thread_pool().size();
        const std::int64_t wanted = std::max<std::int64_t>(64, (cols + threads - 1) / threads);
        grain_ = std::max<std::int64_t>(block, (wanted + block - 1) / block * block);
        chunks_ = (cols + grain_ - 1) / grain_;
        token_blocks_ = std::clamp<std::int64_t>((threads + chunks_ - 1) / chunks_, 1, (tokens + 63) / 64);
        block_tokens_ = (tokens + token_blocks_ - 1) / token_blocks_;
    }
    std::int64_t count() const { return token_blocks_ * chunks_; }
    Item at(std::int64_t item) const {
        const std::int64_t t0 = (item / chunks_) * block_tokens_, c0 = (item % chunks_) * grain_;
        return {t0, std::min(block_tokens_, tokens_ - t0), c0, std::min(grain_, cols_ - c0)};
    }

private:
    std::int64_t tokens_, cols_, grain_, chunks_, token_blocks_, block_tokens_;
};

// The part of a whole-matrix second product that a slice of the output reads: its A from row
// first_row on, its B from column block first_block on (null when there is none).
const cpu::bf16::SecondProduct* slice_of(const cpu::bf16::SecondProduct* then, std::int64_t first_row,
                                         std::int64_t first_block, cpu::bf16::SecondProduct& slice) {
    if (then == nullptr) return nullptr;
    slice = *then;
    slice.a = then->a + first_row * then->lda;
    slice.packed = then->packed + cpu::bf16::packed_offset(then->k, first_block);
    return &slice;
}

// The panel path: each thread owns a contiguous range of output columns (weight rows), converts
// them a panel at a time into fp32 and lets sgemm compute y[:, panel] = x · panelᵀ; in bf16 see
// cpu::bf16_matmul_forward.
void panel_matmul(float* y, const float* x, const Matrix& w, std::int64_t tokens, std::int64_t row_stride,
                  bool bf16) {
    if (bf16) return cpu::bf16_matmul_forward(y, rounded_activations(x, tokens, w.cols), w, tokens, nullptr);
    const std::int64_t cols = w.cols;
    const std::int64_t panel_rows = std::max<std::int64_t>(16, (panel_floats / cols) / 16 * 16);
    thread_pool().parallel_for(w.rows, 16, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r0 = begin; r0 < end; r0 += panel_rows) {
            const std::int64_t n = std::min(panel_rows, end - r0);
            std::int64_t stride;
            const float* panel = weight_panel(w, row_stride, r0, n, 0, cols, stride);
            cpu::sgemm(false, true, tokens, n, cols, 1.0f, x, cols, panel, stride, 0.0f, y + r0, w.rows);
        }
    });
}

}  // namespace

void cpu::bf16_matmul_forward(float* y, const std::uint16_t* x16, const Matrix& w, std::int64_t tokens,
                              const cpu::bf16::SecondProduct* then) {
    const std::int64_t row_stride = checked_row_stride(w);
    const std::int64_t cols = w.cols;
    const std::int64_t lda = cpu::bf16::round_up(cols, cpu::bf16::block_k);
    const std::int64_t panel_rows = std::max<std::int64_t>(16, (panel_floats / cols) / 16 * 16);
    thread_pool().parallel_for(w.rows, 16, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r0 = begin; r0 < end; r0 += panel_rows) {
            const std::int64_t n = std::min(panel_rows, end - r0);
            const std::int64_t first_block = r0 / cpu::bf16::block_n;
            const std::uint16_t* packed;
            if (w.packed != nullptr) {
                packed = w.packed->transposed.get() + cpu::bf16::packed_offset(cols, first_block);
            } else {
                std::int64_t stride;
                const float* panel = weight_panel(w, row_stride, r0, n, 0, cols, stride);
                std::uint16_t* scratch =
                    cpu::thread_scratch<std::uint16_t, Bf16Scratch::Packed>(cpu::bf16::packed_elements(cols, n));
                cpu::bf16::pack_transposed(scratch, panel, stride, n, cols);
                packed = scratch;
            }
            cpu::bf16::SecondProduct slice;
            cpu::bf16::gemm(y + r0, w.rows, x16, lda, packed, tokens, n, cols, false,
                            slice_of(then, 0, first_block, slice));
        }
    });
}

Precision effective_precision(Precision precision) {
    if (precision == Precision::BF16 && !cpu::bf16::available()) return Precision::F32;
    return precision;
}

const char* precision_name(Precision precision) {
    switch (precision) {
        case Precision::BF16: return "bf16";
        case Precision::Int8: return "int8";
        case Precision::F32: break;
    }
    return "fp32";
}

bool int8_tiles_available() { return cpu::int8::tiles_available(); }

std::optional<Precision> parse_precision(std::string_view name) {
    for (Precision precision : {Precision::F32, Precision::BF16, Precision::Int8})
        if (name == precision_name(precision)) return precision;
    return std::nullopt;
}

void matmul_forward(float* y, const float* x, const Matrix& w, const float* bias, std::int64_t tokens,
                    Precision precision) {
    const std::int64_t stride = checked_row_stride(w);
    if (tokens <= 0 || w.rows == 0) return;
    // Int8 at every token count: a token's result must not depend on the rows beside it (the
    // server batches decodes with other requests' prompt chunks).
    if (precision == Precision::Int8 && cpu::int8::supported(w.type))
        int8_matvec(y, x, w, tokens, stride);
    else if (tokens < panel_min_tokens)
        matvec(y, x, w, tokens, stride);
    else
        panel_matmul(y, x, w, tokens, stride, use_bf16(precision));
    if (bias != nullptr)
        for (std::int64_t t = 0; t < tokens; ++t)
            for (std::int64_t r = 0; r < w.rows; ++r) y[t * w.rows + r] += bias[r];
}

void matmul_backward_input(float* dx, const float* dy, const Matrix& w, std::int64_t tokens, Precision precision) {
    const std::int64_t stride = checked_row_stride(w);
    if (tokens <= 0 || w.rows == 0) return;
    if (use_bf16(precision))
        return cpu::bf16_matmul_backward_input(dx, rounded_activations(dy, tokens, w.rows), w, tokens, nullptr);
    const std::int64_t cols = w.cols;
    const InputGradientItems items(tokens, cols, dtype_info(w.type).block_size);
    thread_pool().parallel_for(items.count(), 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
            const auto [t0, rows_t, c0, width] = items.at(item);
            if (rows_t <= 0) continue;
            const std::int64_t panel_rows = std::max<std::int64_t>(16, panel_floats / width);
            for (std::int64_t r0 = 0; r0 < w.rows; r0 += panel_rows) {
                const std::int64_t n = std::min(panel_rows, w.rows - r0);
                std::int64_t panel_stride;
                const float* panel = weight_panel(w, stride, r0, n, c0, width, panel_stride);
                cpu::sgemm(false, false, rows_t, width, n, 1.0f, dy + t0 * w.rows + r0, w.rows, panel, panel_stride,
                           1.0f, dx + t0 * cols + c0, cols);
            }
        }
    });
}

void cpu::bf16_matmul_backward_input(float* dx, const std::uint16_t* dy16, const Matrix& w, std::int64_t tokens,
                                     const cpu::bf16::SecondProduct* then) {
    const std::int64_t stride = checked_row_stride(w);
    if (tokens <= 0 || w.rows == 0) return;
    const std::int64_t lda = cpu::bf16::round_up(w.rows, cpu::bf16::block_k);
    const std::int64_t cols = w.cols;
    // Chunks start on w's 16-wide column blocks (w.packed's, and then's B2's).
    const InputGradientItems items(tokens, cols, std::lcm(dtype_info(w.type).block_size, cpu::bf16::block_n));
    thread_pool().parallel_for(items.count(), 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
            const auto [t0, rows_t, c0, width] = items.at(item);
            if (rows_t <= 0) continue;
            float* out = dx + t0 * cols + c0;
            cpu::bf16::SecondProduct slice;
            const cpu::bf16::SecondProduct* last_then = slice_of(then, t0, c0 / cpu::bf16::block_n, slice);
            if (w.packed != nullptr) {
                // The whole contraction in one product: the same k-blocks reach each C tile in
                // the same order as panel by panel.
                const std::uint16_t* packed = w.packed->plain.get() + cpu::bf16::packed_offset(w.rows, c0 / cpu::bf16::block_n);
                cpu::bf16::gemm(out, cols, dy16 + t0 * lda, lda, packed, rows_t, width, w.rows, true, last_then);
                continue;
            }
            // Panels start at multiples of 32 weight rows, so that the 32-wide blocks of dy's
            // columns they read end inside its rows' zero-padded tails (bf16_gemm.h); `then` joins
            // the last panel's sums.
            const std::int64_t panel_rows = std::max<std::int64_t>(32, panel_floats / width / 32 * 32);
            for (std::int64_t r0 = 0; r0 < w.rows; r0 += panel_rows) {
                const std::int64_t n = std::min(panel_rows, w.rows - r0);
                std::int64_t panel_stride;
                const float* panel = weight_panel(w, stride, r0, n, c0, width, panel_stride);
                std::uint16_t* packed = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Packed>(cpu::bf16::packed_elements(n, width));
                cpu::bf16::pack(packed, panel, panel_stride, n, width);
                cpu::bf16::gemm(out, cols, dy16 + t0 * lda + r0, lda, packed, rows_t, width, n, true,
                                r0 + n == w.rows ? last_then : nullptr);
            }
        }
    });
}

std::int64_t packed_bf16_bytes(const Matrix& w) {
    return 2 * (cpu::bf16::packed_elements(w.cols, w.rows) + cpu::bf16::packed_elements(w.rows, w.cols));
}

PackedBf16 pack_bf16(const Matrix& w) {
    const std::int64_t stride = checked_row_stride(w);
    if (!use_bf16(Precision::BF16)) fail("pack_bf16: this CPU or build has no AMX-BF16");
    PackedBf16 packed;
    packed.transposed = aligned_array<std::uint16_t>(cpu::bf16::packed_elements(w.cols, w.rows));
    packed.plain = aligned_array<std::uint16_t>(cpu::bf16::packed_elements(w.rows, w.cols));
    // wᵀ by ranges of w's rows (its column blocks), w by ranges of whole-block columns (its
    // column blocks, every row): each range a panel as the products would dequantize it.
    const std::int64_t panel_rows = std::max<std::int64_t>(16, (panel_floats / w.cols) / 16 * 16);
    thread_pool().parallel_for(w.rows, panel_rows, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r0 = begin; r0 < end; r0 += panel_rows) {
            const std::int64_t n = std::min(panel_rows, end - r0);
            std::int64_t panel_stride;
            const float* panel = weight_panel(w, stride, r0, n, 0, w.cols, panel_stride);
            cpu::bf16::pack_transposed(packed.transposed.get() + cpu::bf16::packed_offset(w.cols, r0 / cpu::bf16::block_n),
                                       panel, panel_stride, n, w.cols);
        }
    });
    const std::int64_t block = std::lcm<std::int64_t>(dtype_info(w.type).block_size, cpu::bf16::block_n);
    const std::int64_t width = std::max(block, panel_floats / std::max<std::int64_t>(w.rows, 1) / block * block);
    thread_pool().parallel_for(w.cols, width, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t c0 = begin; c0 < end; c0 += width) {
            const std::int64_t n = std::min(width, end - c0);
            std::int64_t panel_stride;
            const float* panel = weight_panel(w, stride, 0, w.rows, c0, n, panel_stride);
            cpu::bf16::pack(packed.plain.get() + cpu::bf16::packed_offset(w.rows, c0 / cpu::bf16::block_n), panel,
                            panel_stride, w.rows, n);
        }
    });
    return packed;
}

void matmul_backward_weight(float* dw, float* dbias, const float* dy, const float* x, std::int64_t rows,
                            std::int64_t cols, std::int64_t tokens) {
    if (tokens <= 0 || rows <= 0 || cols <= 0) return;
    // Each thread owns a range of weight rows: dw[r0:r1] += dy[:, r0:r1]ᵀ · x and the same bias rows.
    thread_pool().parallel_for(rows, 16, [&](std::int64_t r0, std::int64_t r1) {
        if (dw != nullptr)
            cpu::sgemm(true, false, r1 - r0, cols, tokens, 1.0f, dy + r0, rows, x, cols, 1.0f, dw + r0 * cols, cols);
        if (dbias != nullptr)
            for (std::int64_t t = 0; t < tokens; ++t)
                for (std::int64_t r = r0; r < r1; ++r) dbias[r] += dy[t * rows + r];
    });
}

void embedding_forward(float* out, const std::int32_t* ids, std::int64_t tokens, const Matrix& table) {
    checked_row_stride(table);  // throws for a shape or type it cannot read
    for (std::int64_t t = 0; t < tokens; ++t) {
        if (ids[t] < 0 || ids[t] >= table.rows)
            fail("embedding: token id {} at position {} is outside the vocabulary of {} rows", ids[t], t, table.rows);
        dequantize_weight_row(table, ids[t], 0, table.cols, out + t * table.cols);
    }
}

}  // namespace kindred::kernels
