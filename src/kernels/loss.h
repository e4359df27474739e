// kernels/loss.h — training losses with hand-written gradients: the LM head's softmax
// cross-entropy fused with the output projection (vocabulary processed in chunks, so the
// [tokens x vocab] logits never exist), plain cross-entropy for small classifier heads, the
// temperature-scaled distillation KL (also fused with the output projection against a top-k
// teacher), soft-label cross-entropy, and MSE.
//
// Conventions shared by every loss here (llm.c style, one forward and one backward per op):
//  - forward returns the SUM over rows (in double); the caller divides by whatever count it
//    reduces by, and passes that factor to backward as `grad_scale` = d(final loss)/d(sum).
//  - backward ADDS into its gradient buffer (the caller zeroes it once per accumulation cycle).
//  - targets equal to `ignore_index` (-100, as PyTorch) contribute neither loss nor gradient.
//  - optional per-row weights multiply a row's loss and gradient (null = all 1).
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/matmul.h"

namespace kindred::kernels {

inline constexpr std::int32_t ignore_index = -100;

struct CrossEntropyTotals {
    double loss = 0.0;         // Σ weight[t] · (−log p(target[t])) over counted rows
    double weight = 0.0;       // Σ weight[t] over counted rows (the usual mean divisor)
    std::int64_t counted = 0;  // rows whose target is not ignore_index
};

// Rows of a frozen [vocab x dim] output projection, as fp32. Either `f32` points at row-major
// fp32 storage read in place, or `dequantize(context, r0, r1, dst)` writes rows [r0, r1) into
// dst[(r1 - r0) x dim] (called concurrently for disjoint ranges, so it must be thread-safe and
// must not throw). rows/cols, when not -1, are checked against the loss's vocab/dim.
// `precision` is the arithmetic of the losses' products against these rows (kernels/matmul.h).
struct WeightRows {
    const float* f32 = nullptr;
    void (*dequantize)(const void* context, std::int64_t row_begin, std::int64_t row_end, float* dst) = nullptr;
    const void* context = nullptr;
    std::int64_t rows = -1;
    std::int64_t cols = -1;
    Precision precision = Precision::F32;
    // The matrix's BF16 packings (matmul.h's pack_bf16), when the caller made them: BF16 walks
    // read their chunks from these instead of dequantizing and packing each chunk (same bits).
    const PackedBf16* packed = nullptr;
};

// The rows of `w` (any dtype matmul_forward accepts). `w` is referenced, not copied: it must
// outlive the returned value. Throws Error for a type that cannot be dequantized or a row length
// that is not a whole number of blocks.
WeightRows weight_rows(const Matrix& w);

struct FusedCrossEntropyShape {
    std::int64_t tokens = 0;
    std::int64_t dim = 0;
    std::int64_t vocab = 0;
    std::int64_t chunk = 1024;  // vocabulary rows per step; need not divide vocab (512–8192 ran
                                // equally fast at 512 x 576 x 49152 on 2 cores: GEMM-bound)
};

// Cross-entropy of softmax(h · Wᵀ) against `targets` without materialising the logits.
// Pass 1 streams the vocabulary in chunks ([tokens x chunk] logits by sgemm) and keeps an online
// log-sum-exp per token; pass 2 (only when dh is not null) recomputes each chunk's logits and
// adds grad_scale · weight[t] · (softmax − onehot) · W_chunk into dh. Memory beyond the inputs:
// O(tokens · chunk) logits + O(chunk · dim) dequantized rows + O(tokens · dim) gathered rows of
// the counted tokens (ignored tokens are dropped before any product is taken). The price of not
// storing logits is a third GEMM (pass 2 recomputes what pass 1 computed).
// target_logprob[t] (optional, [tokens]) receives log p(target[t]), 0 for ignored rows.
// Throws Error for bad shapes or a target outside [0, vocab) that is not ignore_index.
CrossEntropyTotals fused_cross_entropy(float* dh, float* target_logprob, const float* h, const WeightRows& w,
                                       const std::int32_t* targets, const float* weights,
                                       const FusedCrossEntropyShape& shape, float grad_scale);

// fused_cross_entropy in two halves, for losses whose per-token weights depend on the
// log-probabilities themselves (a sequence-level preference loss weighs every token of a sequence
// by a function of the whole sequence's log-probability, so the weights exist only after pass 1):
// forward() is pass 1 and keeps the gathered rows and log-sum-exps; backward() is pass 2 with the
// weights chosen then. Together they take fused_cross_entropy's three vocabulary products, where
// a pass-1-only call followed by a full call would take four. fused_cross_entropy is this class.
class FusedCrossEntropy {
public:
    FusedCrossEntropy();
    ~FusedCrossEntropy();
    FusedCrossEntropy(const FusedCrossEntropy&) = delete;
    FusedCrossEntropy& operator=(const FusedCrossEntropy&) = delete;

    // Pass 1 (see fused_cross_entropy; weights, optional, only scale the returned totals). h, w and
    // targets are referenced until backward() or the next forward().
    CrossEntropyTotals forward(float* target_logprob, const float* h, const WeightRows& w, const std::int32_t* targets,
                               const float* weights, const FusedCrossEntropyShape& shape);
    // Pass 2: dh += grad_scale · weight[t] · d(−log p(target[t]))/dh[t] for every counted token t
    // (weights: [tokens] of any sign, null = all 1). Error without a preceding forward().
    void backward(float* dh, const float* weights, float grad_scale);

private:
    struct State;
    std::unique_ptr<State> state_;
};

// Cross-entropy over materialised logits [rows x classes] (small heads; also the reference the
// fused version is tested against). target_logprob as above.
CrossEntropyTotals softmax_cross_entropy_forward(float* target_logprob, const float* logits,
                                                 const std::int32_t* targets, const float* weights, std::int64_t rows,
                                                 std::int64_t classes);
// dlogits += grad_scale · weight[r] · (softmax(logits[r]) − onehot(target[r])).
void softmax_cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets,
                                    const float* weights, std::int64_t rows, std::int64_t classes, float grad_scale);

// Distillation: loss_scale · Σ_rows KL(softmax(teacher/τ) ‖ softmax(student/τ)), per row over
// `classes` logits. Hinton et al. multiply by τ² so that gradient magnitudes do not shrink as τ
// grows (the gradient w.r.t. student logits is (p_S − p_T)/τ); that is a caller's choice, made
// explicit through loss_scale (pass τ² for the usual convention, 1 for plain KL). Classes the
// teacher gives probability 0 (logit −inf) contribute 0, where torch's kl_div would give NaN.
double kl_divergence_forward(const float* teacher, const float* student, std::int64_t rows, std::int64_t classes,
                             float temperature, float loss_scale);
// dstudent += grad_scale · loss_scale · (softmax(student/τ) − softmax(teacher/τ)) / τ.
void kl_divergence_backward(float* dstudent, const float* teacher, const float* student, std::int64_t rows,
                            std::int64_t classes, float temperature, float loss_scale, float grad_scale);

// Soft-label cross-entropy for small heads (multi-label emotion targets: uniform over the labels):
// Σ_rows −Σ_c target[r,c] · log softmax(logits[r])_c. A row whose targets are all 0 contributes
// nothing (the caller's "no label" row). Targets need not sum to 1; the gradient below is the exact
// derivative for any non-negative targets. Throws Error for a bad shape or a negative target.
double soft_cross_entropy_forward(const float* logits, const float* target_probs, std::int64_t rows,
                                  std::int64_t classes);
// dlogits += grad_scale · (softmax(logits[r]) · Σ_c target[r,c] − target[r]).
void soft_cross_entropy_backward(float* dlogits, const float* logits, const float* target_probs, std::int64_t rows,
                                 std::int64_t classes, float grad_scale);

// Sigmoid (binary) cross-entropy for multi-label heads, one independent sigmoid per class, as
// torch.nn.BCEWithLogitsLoss(reduction="sum", pos_weight=pos_weight) computes it:
//   Σ_rows Σ_c  pw_c · y[r,c] · softplus(−z[r,c]) + (1 − y[r,c]) · softplus(z[r,c]),
// softplus evaluated stably (log1p(exp(−|z|)) + max(z, 0)) in double. `pos_weight` (one per class,
// > 0; null = all 1) scales the positive term: the usual rebalancing of rare labels. Targets must
// lie in [0, 1]. Throws Error for a bad shape, a target outside [0, 1] or a bad pos_weight.
double sigmoid_cross_entropy_forward(const float* logits, const float* targets, const float* pos_weight,
                                     std::int64_t rows, std::int64_t classes);
// dlogits += grad_scale · (σ(z) · (pw_c · y + 1 − y) − pw_c · y).
void sigmoid_cross_entropy_backward(float* dlogits, const float* logits, const float* targets, const float* pos_weight,
                                    std::int64_t rows, std::int64_t classes, float grad_scale);

// A teacher distribution kept as its k most likely classes plus one bucket for the rest (the
// safety teacher's cache, train/safety_teacher.h): row r's ids are ids[r·k .. r·k + k), distinct
// and in [0, vocab), probs likewise (at the distillation temperature), residual[r] = 1 − Σ probs.
struct TopKTeacher {
    const std::int32_t* ids = nullptr;
    const float* probs = nullptr;
    const float* residual = nullptr;
    std::int64_t k = 0;
};

// Σ_rows KL(teacher_r ‖ s_r) with s_r = softmax(h_r · Wᵀ / τ), the teacher's tail taken as ONE
// bucket:  KL_r = Σ_i p_i log(p_i / s_i) + r · log(r / (1 − Σ_i s_i))   (terms with p_i or r = 0
// vanish), the exact KL between the two distributions coarsened to k + 1 outcomes. Plain KL: no
// τ² factor. The student's logits are streamed in vocabulary chunks from the frozen output matrix
// as fused_cross_entropy does (never [tokens x vocab] at once; shape.tokens = rows of h and of the
// teacher). With k = vocab and residual 0 it equals kl_divergence_forward(loss_scale = 1).
// When dh is not null: dh += grad_scale · d(sum)/dh, which is
//   (1/τ) · Σ_v (s_v · (Σ_i p_i + r) − q_v) · W_v,
// with q_v = p_i at a top-k id and r · s_v / (1 − Σ_i s_i) elsewhere.
// A row whose probs and residual are all 0 contributes nothing (padding). With k = vocab no tail
// exists and the residual (then only the rounding of 1 − Σ p) is left out of loss and gradient.
// Throws Error for bad shapes, τ <= 0, k outside [1, vocab], an id outside [0, vocab) or repeated
// within a row, a negative or non-finite probability or residual.
double fused_topk_kl(float* dh, const float* h, const WeightRows& w, const TopKTeacher& teacher,
                     const FusedCrossEntropyShape& shape, float temperature, float grad_scale);

// Σ (prediction − target)² over n values; backward: dprediction += grad_scale · 2 · (p − t).
double mse_forward(const float* prediction, const float* target, std::int64_t n);
void mse_backward(float* dprediction, const float* prediction, const float* target, std::int64_t n, float grad_scale);

}  // namespace kindred::kernels
