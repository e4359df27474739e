// kernels/moe.h — mixture-of-experts layers: routing, grouping tokens by expert, products against
// stacks of frozen expert matrices, combining the experts' outputs, and LoRA on expert stacks in
// PEFT's layout; forward and backward side by side.
//
// A layer runs as
//   logits = x · routerᵀ (+ bias)                         matmul_forward, by the caller
//   chosen, weights = moe_route_forward(logits)           [tokens x k] each
//   groups = moe_group(chosen)                            rows = (token, slot) pairs sorted by expert
//   rows_x = moe_gather(x)                                [tokens·k x hidden]
//   gate, up = expert_matmul_forward(rows_x)              each expert's rows against its slices only
//   act = activation(gate, up); out = expert_matmul_forward(act)
//   y = moe_combine_forward(out, weights)                 y[t] = Σ_slot weight · out[row of (t, slot)]
// Experts nobody chose are never read, so a memory-mapped expert stack pages in only the chosen
// slices. The router is frozen, but its weights are functions of x: the backward passes
// dweights = dy · out back through the routing softmax to dlogits, which the caller sends through
// the router's matmul_backward_input to x (as autograd does in transformers with PEFT).
//
// Backward passes ADD into their gradient buffers (as every backward here) unless they say
// "writes".
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/matmul.h"

namespace kindred::kernels {

enum class RouterKind {
    SoftmaxTopK,  // Qwen3-MoE: softmax over all experts, then the k largest probabilities
    TopKSoftmax,  // gpt-oss: the k largest logits, then softmax over those k
};

struct RouterShape {
    std::int64_t tokens = 0;
    std::int64_t experts = 0;
    std::int64_t top_k = 0;
    RouterKind kind = RouterKind::SoftmaxTopK;
    // SoftmaxTopK only: divide the k probabilities by their sum (Qwen3-MoE's norm_topk_prob).
    // TopKSoftmax weights always sum to 1.
    bool normalize = false;
};

// Writes chosen [tokens x k] (expert ids, largest first; equal values: lower id first, as
// torch.topk on CPU) and weights [tokens x k] from logits [tokens x experts]. The softmax runs in
// fp32 with the max subtracted, as transformers' routers compute it. Throws Error when k is not in
// [1, experts] or a logit is NaN.
void moe_route_forward(std::int32_t* chosen, float* weights, const float* logits, const RouterShape& shape);

// Given dweights [tokens x k], adds dlogits [tokens x experts]. The top-k choice is piecewise
// constant, so only the softmax (and the renormalisation) pass gradient: SoftmaxTopK reaches every
// expert's logit through the full softmax, TopKSoftmax only the chosen ones.
void moe_route_backward(float* dlogits, const float* dweights, const float* logits, const std::int32_t* chosen,
                        const float* weights, const RouterShape& shape);

// The (token, slot) pairs of a batch grouped by expert: row r (0 ≤ r < tokens·k) is pair
// slot_of_row[r] = token · k + slot; expert e owns rows [offsets[e], offsets[e + 1]), in token
// order. row_of_slot inverts slot_of_row.
struct ExpertGroups {
    std::int64_t tokens = 0;
    std::int64_t top_k = 0;
    std::vector<std::int64_t> offsets;      // [experts + 1]
    std::vector<std::int64_t> slot_of_row;  // [tokens · k]
    std::vector<std::int64_t> row_of_slot;  // [tokens · k]

    std::int64_t experts() const { return static_cast<std::int64_t>(offsets.size()) - 1; }
    std::int64_t rows() const { return tokens * top_k; }
    std::int64_t token_of_row(std::int64_t row) const { return slot_of_row[static_cast<std::size_t>(row)] / top_k; }
};

// Fills `groups` (reusing its storage) from chosen [tokens x k]. Throws Error for an expert id
// outside [0, experts) or an expert chosen twice for one token.
void moe_group(ExpertGroups& groups, const std::int32_t* chosen, std::int64_t tokens, std::int64_t top_k,
               std::int64_t experts);

// Writes rows[r] = x[token of r] for every row ([tokens·k x dim] from [tokens x dim]).
void moe_gather(float* rows, const float* x, const ExpertGroups& groups, std::int64_t dim);
// Backward of moe_gather: dx[t] += Σ_slot drows[row of (t, slot)], slots in order (threads split
// tokens, so the sum is the same for any thread count).
void moe_gather_backward(float* dx, const float* drows, const ExpertGroups& groups, std::int64_t dim);

// Writes y[t] = Σ_slot weights[t · k + slot] · out[row of (t, slot)] ([tokens x dim]).
void moe_combine_forward(float* y, const float* out, const float* weights, const ExpertGroups& groups,
                         std::int64_t dim);
// Backward of moe_combine_forward given dy [tokens x dim]: WRITES dout[r] = weight · dy[token of r]
// and dweights[t · k + slot] = dy[t] · out[row of (t, slot)] (either may be null).
void moe_combine_backward(float* dout, float* dweights, const float* dy, const float* out, const float* weights,
                          const ExpertGroups& groups, std::int64_t dim);

// A stack of frozen per-expert [rows x cols] matrices of one type. slices[e] is expert e's matrix:
// equally spaced within one GGUF ffn_*_exps tensor, or one tensor per expert in an HF checkpoint.
// The slices array belongs to the caller.
struct ExpertMatrices {
    DType type = DType::F32;
    std::int64_t experts = 0;
    std::int64_t rows = 0;
    std::int64_t cols = 0;
    const void* const* slices = nullptr;

    Matrix expert(std::int64_t e) const { return {type, rows, cols, slices[e]}; }
};

// Slices of a contiguous [experts x rows x cols] stack (a GGUF 3-D expert tensor, or a stack
// quantized at load: each expert's matrix matrix_bytes apart) starting at `data`, into `slices`
// (resized to experts).
void expert_slices(std::vector<const void*>& slices, const void* data, DType type, std::int64_t experts,
                   std::int64_t rows, std::int64_t cols);

// For every expert with rows: y[its rows] = x[its rows] · W_eᵀ (+ bias[e], bias [experts x w.rows]
// or null), through matmul_forward (so: any dequantizable type, the decode mat-vec for fewer than
// 4 rows, panels otherwise). y [rows x w.rows], x [rows x w.cols].
void expert_matmul_forward(float* y, const float* x, const ExpertMatrices& w, const float* bias,
                           const ExpertGroups& groups, Precision precision = Precision::F32);
// dx[its rows] += dy[its rows] · W_e for every expert with rows (frozen weights: no weight gradient).
void expert_matmul_backward_input(float* dx, const float* dy, const ExpertMatrices& w, const ExpertGroups& groups,
                                  Precision precision = Precision::F32);

// LoRA on an expert stack in PEFT's layout (lora.ParamWrapper, reached with target_parameters):
//   A [experts · rank x in]:  expert e's A_e is rows [e · rank, (e + 1) · rank)
//   B [out x rank · experts]: expert e's B_e[o][j] is B[o][j · experts + e]
// and each expert's product gains scale · (x A_eᵀ) B_eᵀ; B·A is never formed. PEFT's in/out are
// the product's: for a stack stored [experts, in, out] (gpt-oss, is_transposed) and one stored
// [experts, out, in] (Qwen3-MoE) alike, A maps `in` features to the rank.
// The product is split in two halves so that a fused gate_up adapter can feed two separate frozen
// products: lora_down makes xa once, lora_up adds B's rows for one half (see ExpertLoraRows).
struct ExpertLoraShape {
    std::int64_t experts = 0;
    std::int64_t in = 0;
    std::int64_t out = 0;  // all of B's rows (2 · intermediate for a fused gate_up)
    std::int64_t rank = 0;
    float scale = 1.0f;
};

// Which of B's rows feed an output: first + i · step for i < count. The whole adapter is
// {0, 1, out}; a fused gate_up's gate half is {0, 1, n} and up half {n, 1, n} when the halves are
// concatenated (Qwen3-MoE), {0, 2, n} and {1, 2, n} when interleaved (gpt-oss).
struct ExpertLoraRows {
    std::int64_t first = 0;
    std::int64_t step = 1;
    std::int64_t count = 0;
};

// WRITES xa[rows of e] = x[rows of e] · A_eᵀ ([rows x rank]).
void expert_lora_down_forward(float* xa, const float* x, const float* a, const ExpertGroups& groups,
                              const ExpertLoraShape& shape);
// y[rows of e] += scale · xa[rows of e] · B_e[selected rows]ᵀ (y [rows x selected.count]).
void expert_lora_up_forward(float* y, const float* xa, const float* b, ExpertLoraRows selected,
                            const ExpertGroups& groups, const ExpertLoraShape& shape);
// Backward of expert_lora_up_forward: dxa += scale · dy · B_e[selected], and B's selected rows
// db += scale · dyᵀ · xa (either may be null).
void expert_lora_up_backward(float* dxa, float* db, const float* dy, const float* xa, const float* b,
                             ExpertLoraRows selected, const ExpertGroups& groups, const ExpertLoraShape& shape);
// Backward of expert_lora_down_forward: da_e += dxaᵀ · x, dx += dxa · A_e (either may be null).
void expert_lora_down_backward(float* dx, float* da, const float* dxa, const float* x, const float* a,
                               const ExpertGroups& groups, const ExpertLoraShape& shape);

}  // namespace kindred::kernels
