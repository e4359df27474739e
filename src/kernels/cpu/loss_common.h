// kernels/cpu/loss_common.h — internal to kernels/cpu: what the losses of loss.cpp and distill.cpp
// share, so neither keeps a twin of the other's numerics: the softmax helpers (fp32 exponentials
// summed in double for vocabulary rows, all-double log-sum-exp for small rows), and VocabStream,
// the walk over an output projection's vocabulary in chunks behind the fused LM-head losses
// (fused_cross_entropy, fused_topk_kl), so that [tokens x vocab] logits never exist. For each chunk of
// vocabulary rows the chunk's weights are made fp32 once (dequantized in parallel when stored
// quantized), then the token rows are split over core/thread_pool and each thread computes its
// block's logits with a one-threaded sgemm and hands them to the caller's per-block function.
// The split depends only on the row count and thread count, so a second walk over the same rows
// sees bit-identical logits in the same blocks (pass 2 of a loss relies on it).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/simd.h"
#include "kernels/loss.h"

namespace kindred::kernels::cpu {

// Σ exp(z[i] − shift) with fp32 exponentials (AVX2 exp_lanes, ~2 ulp) summed in double.
inline double sum_exp_shifted(const float* z, float shift, std::int64_t n) {
    std::int64_t i = 0;
    double total = 0.0;
#ifdef KINDRED_AVX2
    const __m256 s = _mm256_set1_ps(shift);
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_lanes<Lanes8>(_mm256_sub_ps(_mm256_loadu_ps(z + i), s));
        low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, _mm256_add_pd(low, high));
    total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
    for (; i < n; ++i) total += std::exp(z[i] - shift);
    return total;
}

// z[i] = coefficient · exp(z[i] − log_z): a softmax row scaled for the gradient.
inline void scaled_softmax(float* z, float log_z, float coefficient, std::int64_t n) {
    std::int64_t i = 0;
#ifdef KINDRED_AVX2
    const __m256 s = _mm256_set1_ps(log_z), c = _mm256_set1_ps(coefficient);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(z + i, _mm256_mul_ps(c, exp_lanes<Lanes8>(_mm256_sub_ps(_mm256_loadu_ps(z + i), s))));
#endif
    for (; i < n; ++i) z[i] = coefficient * std::exp(z[i] - log_z);
}

// log Σ exp(z[i] · inverse_t) over n > 0 values, max-shifted, entirely in double: these rows are
// small heads or distillation rows, where exactness is worth more than fp32 exp's speed.
inline double log_sum_exp(const float* z, std::int64_t n, double inverse_t) {
    float m = z[0];
    for (std::int64_t i = 1; i < n; ++i) m = std::max(m, z[i]);
    const double shift = m * inverse_t;
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += std::exp(z[i] * inverse_t - shift);
    return shift + std::log(sum);
}

inline void check_rows(std::int64_t rows, std::int64_t classes, const char* op) {
    if (rows < 0 || classes <= 0) fail("{}: bad shape {} x {}", op, rows, classes);
}

// Error (prefixed with `op`) unless shape is positive and w is a valid source for vocab x dim.
inline void check_vocab_shape(const WeightRows& w, const FusedCrossEntropyShape& shape, const char* op) {
    if (shape.tokens < 0 || shape.dim <= 0 || shape.vocab <= 0 || shape.chunk <= 0)
        fail("{}: bad shape tokens={} dim={} vocab={} chunk={}", op, shape.tokens, shape.dim, shape.vocab,
             shape.chunk);
    if ((w.f32 == nullptr) == (w.dequantize == nullptr))
        fail("{}: weight rows need exactly one of f32 storage or a dequantize function", op);
    if ((w.rows != -1 && w.rows != shape.vocab) || (w.cols != -1 && w.cols != shape.dim))
        fail("{}: weight is {} x {} but vocab x dim is {} x {}", op, w.rows, w.cols, shape.vocab, shape.dim);
}

class VocabStream {
public:
    // Tokens per product: enough rows to amortise packing of the weight chunk.
    static constexpr std::int64_t token_grain = 16;

    // rows: [n x shape.dim] row-major inputs, kept by reference. Each chunk's logits are
    // scale · rows · W_chunkᵀ. Call check_vocab_shape first.
    VocabStream(const float* rows, std::int64_t n, const WeightRows& w, const FusedCrossEntropyShape& shape,
                float scale)
        : rows_(rows), n_(n), w_(w), dim_(shape.dim), vocab_(shape.vocab), chunk_(std::min(shape.chunk, shape.vocab)),
          scale_(scale), bf16_(effective_precision(w.precision) == Precision::BF16),
          // Chunks of whole 32-row blocks can be taken out of the caller's packings.
          prepacked_(bf16_ && w.packed != nullptr && chunk_ % bf16::block_k == 0),
          logits_(aligned_array<float>(n * chunk_)),
          dequantized_(aligned_array<float>(w.f32 != nullptr || prepacked_ ? 0 : chunk_ * shape.dim)) {
        if (!bf16_) return;
        // bf16: the rows are rounded (scale folded in) once; each chunk is packed as Wᵀ for the
        // logits and, in gradient walks, as W for add_product (bf16_gemm.h's layouts).
        rows_lda_ = bf16::round_up(dim_, bf16::block_k);
        rows16_ = aligned_array<std::uint16_t>(n_ * rows_lda_);
        bf16::round_rows_parallel(rows16_.get(), rows_lda_, rows_, dim_, n_, dim_, scale_);
        if (prepacked_) return;
        transposed_ = aligned_array<std::uint16_t>(bf16::packed_elements(dim_, chunk_));
        plain_ = aligned_array<std::uint16_t>(bf16::packed_elements(chunk_, dim_));
    }

    // Calls per_block(b, e, z, v0, v1, wc) for every block [b, e) of rows and every vocabulary
    // chunk [v0, v1): z holds the block's logits over the chunk ([e − b x v1 − v0], row-major,
    // writable scratch) and wc the chunk's fp32 weight rows [v1 − v0 x dim]. Blocks of one chunk
    // run concurrently; chunks run in order. A walk whose per_block calls add_product must say so
    // (with_gradient), so that bf16 chunks are also packed for it.
    template <typename F>
    void run(F&& per_block, bool with_gradient = false) {
        auto& pool = thread_pool();
        for (std::int64_t v0 = 0; v0 < vocab_; v0 += chunk_) {
            const std::int64_t v1 = std::min(vocab_, v0 + chunk_), cn = v1 - v0;
            const float* wc = w_.f32 != nullptr ? w_.f32 + v0 * dim_ : dequantized_.get();
            if (w_.f32 == nullptr && !prepacked_)
                pool.parallel_for(cn, token_grain, [&](std::int64_t b, std::int64_t e) {
                    w_.dequantize(w_.context, v0 + b, v0 + e, dequantized_.get() + b * dim_);
                });
            if (bf16_) chunk_operands(v0, wc, cn, with_gradient);
            pool.parallel_for(n_, token_grain, [&](std::int64_t b, std::int64_t e) {
                float* z = logits_.get() + b * cn;
                if (bf16_)
                    bf16::gemm(z, cn, rows16_.get() + b * rows_lda_, rows_lda_, chunk_transposed_, e - b, cn, dim_,
                               false);
                else
                    cpu::sgemm(false, true, e - b, cn, dim_, scale_, rows_ + b * dim_, dim_, wc, dim_, 0.0f, z, cn);
                per_block(b, e, z, v0, v1, wc);
            });
        }
    }

    // For use inside per_block of a walk with_gradient: out[(e − b) x dim] += alpha · g[(e − b) x cn] ·
    // wc[cn x dim] (a block's share of an input gradient; out points at the block's first row).
    void add_product(float* out, std::int64_t b, std::int64_t e, const float* g, std::int64_t cn, const float* wc,
                     float alpha) const {
        if (bf16_) {
            const std::int64_t ldg = bf16::round_up(cn, bf16::block_k);
            thread_local GrowingBuffer<std::uint16_t> g16_buffer;
            std::uint16_t* g16 = g16_buffer.at_least((e - b) * ldg);
            bf16::round_rows(g16, ldg, g, cn, e - b, cn, alpha);
            bf16::gemm(out, dim_, g16, ldg, chunk_plain_, e - b, dim_, cn, true, nullptr, chunk_plain_k_);
            return;
        }
        cpu::sgemm(false, false, e - b, dim_, cn, alpha, g, cn, wc, dim_, 1.0f, out, dim_);
    }

private:
    // Points the chunk's packed operands (Wᵀ for the logits, W for add_product) at the caller's
    // packings of the whole matrix, or packs the chunk's fp32 rows wc [cn x dim] into this
    // stream's buffers.
    void chunk_operands(std::int64_t v0, const float* wc, std::int64_t cn, bool with_gradient) {
        if (prepacked_) {
            chunk_transposed_ = w_.packed->transposed.get() + bf16::packed_offset(dim_, v0 / bf16::block_n);
            chunk_plain_ = w_.packed->plain.get() + v0 / bf16::block_k * bf16::block_k * bf16::block_n;
            chunk_plain_k_ = vocab_;
            return;
        }
        pack_chunk(wc, cn, with_gradient);
        chunk_transposed_ = transposed_.get();
        chunk_plain_ = plain_.get();
        chunk_plain_k_ = 0;
    }

    // Packs the chunk's fp32 rows wc [cn x dim] in parallel: as Wᵀ over blocks of 16 vocabulary
    // rows, and (with_gradient) as W over blocks of 16 hidden columns.
    void pack_chunk(const float* wc, std::int64_t cn, bool with_gradient) {
        auto& pool = thread_pool();
        const std::int64_t vocab_blocks = bf16::round_up(cn, bf16::block_n) / bf16::block_n;
        pool.parallel_for(vocab_blocks, 4, [&](std::int64_t b, std::int64_t e) {
            const std::int64_t r0 = b * bf16::block_n, r1 = std::min(cn, e * bf16::block_n);
            bf16::pack_transposed(transposed_.get() + bf16::packed_offset(dim_, b), wc + r0 * dim_, dim_, r1 - r0,
                                  dim_);
        });
        if (!with_gradient) return;
        const std::int64_t dim_blocks = bf16::round_up(dim_, bf16::block_n) / bf16::block_n;
        pool.parallel_for(dim_blocks, 4, [&](std::int64_t b, std::int64_t e) {
            const std::int64_t c0 = b * bf16::block_n, c1 = std::min(dim_, e * bf16::block_n);
            bf16::pack(plain_.get() + bf16::packed_offset(cn, b), wc + c0, dim_, cn, c1 - c0);
        });
    }

    const float* rows_;
    std::int64_t n_;
    const WeightRows& w_;
    std::int64_t dim_, vocab_, chunk_;
    float scale_;
    bool bf16_;
    bool prepacked_;
    AlignedArray<float> logits_;
    AlignedArray<float> dequantized_;
    std::int64_t rows_lda_ = 0;
    AlignedArray<std::uint16_t> rows16_;      // the rows in bf16
    AlignedArray<std::uint16_t> transposed_;  // the chunk packed as Wᵀ
    AlignedArray<std::uint16_t> plain_;       // the chunk packed as W (gradient walks)
    // The current chunk's operands: this stream's packings or the caller's, the latter a run of
    // k-blocks in a packing of chunk_plain_k_ rows (0: the chunk's own).
    const std::uint16_t* chunk_transposed_ = nullptr;
    const std::uint16_t* chunk_plain_ = nullptr;
    std::int64_t chunk_plain_k_ = 0;
};

}  // namespace kindred::kernels::cpu
