// kernels/cpu/moe.cpp — mixture-of-experts routing, grouping and grouped products on the CPU (see
// kernels/moe.h). Per-token work (routing, gather, combine) is split over tokens. Products against
// the frozen stacks go expert by expert through matmul_forward/matmul_backward_input, each of which
// splits its own work over the pool. LoRA's small products split over experts instead (one
// one-threaded sgemm per expert and step): every output element (rows of the expert, its A_e, its
// columns of B) belongs to one expert, so each is computed by one thread in one order.
#include "kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"
#include "kernels/softmax.h"

namespace kindred::kernels {
namespace {

// Tokens per work item of the per-token loops: the work per token is a few hundred floats.
constexpr std::int64_t token_grain = 16;

// A token's or an expert's fp32 working buffer, per thread.
enum class Scratch { Work };

float* scratch(std::int64_t n) { return cpu::thread_scratch<float, Scratch::Work>(n); }

void check_router(const RouterShape& shape) {
    if (shape.tokens < 0 || shape.experts <= 0) fail("moe: bad router shape tokens={} experts={}", shape.tokens, shape.experts);
    if (shape.top_k < 1 || shape.top_k > shape.experts)
        fail("moe: top-k {} is outside [1, {}] (the number of experts)", shape.top_k, shape.experts);
}

// The k largest of values[0..n) into `chosen`, largest first, equal values by lower index.
void top_k(std::int32_t* chosen, const float* values, std::int64_t n, std::int64_t k, std::int64_t token) {
    thread_local std::vector<std::int32_t> order;
    order.resize(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    for (std::int64_t i = 0; i < n; ++i)
        if (std::isnan(values[i])) fail("moe: router logit {} of token {} is NaN", i, token);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int32_t a, std::int32_t b) {
        return values[a] > values[b] || (values[a] == values[b] && a < b);
    });
    std::copy(order.begin(), order.begin() + k, chosen);
}

// The chosen weights' share of the full softmax for SoftmaxTopK: Σ_k p[chosen[k]] in fp32, in
// slot order (as transformers' sum over the top-k values).
float chosen_sum(const float* probs, const std::int32_t* chosen, std::int64_t k) {
    float sum = 0.0f;
    for (std::int64_t s = 0; s < k; ++s) sum += probs[chosen[s]];
    return sum;
}

void check_groups(const ExpertGroups& groups, std::int64_t experts, const char* what) {
    if (groups.experts() != experts)
        fail("moe: {} has {} experts but the tokens were grouped over {}", what, experts, groups.experts());
}

void check_lora(const ExpertLoraShape& s, const ExpertGroups& groups) {
    if (s.experts <= 0 || s.in <= 0 || s.out <= 0 || s.rank <= 0)
        fail("moe: bad expert LoRA shape experts={} in={} out={} rank={}", s.experts, s.in, s.out, s.rank);
    check_groups(groups, s.experts, "the expert LoRA");
}

void check_rows(const ExpertLoraRows& selected, const ExpertLoraShape& s) {
    if (selected.count <= 0 || selected.step <= 0 || selected.first < 0 ||
        selected.first + (selected.count - 1) * selected.step >= s.out)
        fail("moe: LoRA rows {} + i·{} for i < {} are outside B's {} rows", selected.first, selected.step,
             selected.count, s.out);
}

// B_e's selected rows, [count x rank], into the calling thread's scratch.
const float* gather_b(const float* b, std::int64_t e, const ExpertLoraRows& selected, const ExpertLoraShape& s) {
    float* be = scratch(selected.count * s.rank);
    const std::int64_t stride = s.rank * s.experts;
    for (std::int64_t i = 0; i < selected.count; ++i) {
        const float* row = b + (selected.first + i * selected.step) * stride + e;
        for (std::int64_t j = 0; j < s.rank; ++j) be[i * s.rank + j] = row[j * s.experts];
    }
    return be;
}

// Runs fn(e, first_row, row_count) for every expert that has rows, experts split over the pool.
template <typename F>
void for_each_expert(const ExpertGroups& groups, F&& fn) {
    thread_pool().parallel_for(groups.experts(), 1, [&](std::int64_t e0, std::int64_t e1) {
        for (std::int64_t e = e0; e < e1; ++e) {
            const std::int64_t first = groups.offsets[static_cast<std::size_t>(e)];
            const std::int64_t count = groups.offsets[static_cast<std::size_t>(e + 1)] - first;
            if (count > 0) fn(e, first, count);
        }
    });
}

}  // namespace

void moe_route_forward(std::int32_t* chosen, float* weights, const float* logits, const RouterShape& shape) {
    check_router(shape);
    const std::int64_t experts = shape.experts, k = shape.top_k;
    thread_pool().parallel_for(shape.tokens, token_grain, [&](std::int64_t t0, std::int64_t t1) {
        float* probs = scratch(experts);
        for (std::int64_t t = t0; t < t1; ++t) {
            const float* row = logits + t * experts;
            std::int32_t* ids = chosen + t * k;
            float* w = weights + t * k;
            if (shape.kind == RouterKind::SoftmaxTopK) {
                softmax_forward(probs, row, experts, 1.0f);
                top_k(ids, probs, experts, k, t);
                const float sum = shape.normalize ? chosen_sum(probs, ids, k) : 1.0f;
                for (std::int64_t s = 0; s < k; ++s) w[s] = shape.normalize ? probs[ids[s]] / sum : probs[ids[s]];
            } else {
                top_k(ids, row, experts, k, t);
                for (std::int64_t s = 0; s < k; ++s) probs[s] = row[ids[s]];
                softmax_forward(w, probs, k, 1.0f);
            }
        }
    });
}

void moe_route_backward(float* dlogits, const float* dweights, const float* logits, const std::int32_t* chosen,
                        const float* weights, const RouterShape& shape) {
    check_router(shape);
    const std::int64_t experts = shape.experts, k = shape.top_k;
    thread_pool().parallel_for(shape.tokens, token_grain, [&](std::int64_t t0, std::int64_t t1) {
        float* buffer = scratch(2 * experts + k);
        for (std::int64_t t = t0; t < t1; ++t) {
            const std::int32_t* ids = chosen + t * k;
            const float* w = weights + t * k;
            const float* dw = dweights + t * k;
            float* dl = dlogits + t * experts;
            if (shape.kind == RouterKind::TopKSoftmax) {
                float* dchosen = buffer;
                std::fill(dchosen, dchosen + k, 0.0f);
                softmax_backward(dchosen, dw, w, k, 1.0f);
                for (std::int64_t s = 0; s < k; ++s) dl[ids[s]] += dchosen[s];
                continue;
            }
            // The forward's probabilities again; dprobs is nonzero only at the chosen experts.
            float* probs = buffer;
            float* dprobs = buffer + experts;
            softmax_forward(probs, logits + t * experts, experts, 1.0f);
            std::fill(dprobs, dprobs + experts, 0.0f);
            if (shape.normalize) {
                // w_s = p_s / S with S = Σ p: dp_s = (dw_s − Σ_j dw_j w_j) / S.
                const float sum = chosen_sum(probs, ids, k);
                double dot = 0.0;
                for (std::int64_t s = 0; s < k; ++s) dot += static_cast<double>(dw[s]) * w[s];
                for (std::int64_t s = 0; s < k; ++s) dprobs[ids[s]] = (dw[s] - static_cast<float>(dot)) / sum;
            } else {
                for (std::int64_t s = 0; s < k; ++s) dprobs[ids[s]] = dw[s];
            }
            softmax_backward(dl, dprobs, probs, experts, 1.0f);
        }
    });
}

void moe_group(ExpertGroups& groups, const std::int32_t* chosen, std::int64_t tokens, std::int64_t top_k,
               std::int64_t experts) {
    if (tokens < 0 || top_k <= 0 || experts <= 0)
        fail("moe: bad grouping shape tokens={} top_k={} experts={}", tokens, top_k, experts);
    const std::int64_t rows = tokens * top_k;
    groups.tokens = tokens;
    groups.top_k = top_k;
    groups.offsets.assign(static_cast<std::size_t>(experts + 1), 0);
    groups.slot_of_row.resize(static_cast<std::size_t>(rows));
    groups.row_of_slot.resize(static_cast<std::size_t>(rows));
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t s = 0; s < top_k; ++s) {
            const std::int32_t e = chosen[t * top_k + s];
            if (e < 0 || e >= experts) fail("moe: token {} chose expert {}, outside [0, {})", t, e, experts);
            for (std::int64_t before = 0; before < s; ++before)
                if (chosen[t * top_k + before] == e) fail("moe: token {} chose expert {} twice", t, e);
            ++groups.offsets[static_cast<std::size_t>(e + 1)];
        }
    std::partial_sum(groups.offsets.begin(), groups.offsets.end(), groups.offsets.begin());
    // Counting sort: rows of each expert in (token, slot) order.
    std::vector<std::int64_t> next(groups.offsets.begin(), groups.offsets.end() - 1);
    for (std::int64_t slot = 0; slot < rows; ++slot) {
        const std::int64_t row = next[static_cast<std::size_t>(chosen[slot])]++;
        groups.slot_of_row[static_cast<std::size_t>(row)] = slot;
        groups.row_of_slot[static_cast<std::size_t>(slot)] = row;
    }
}

void moe_gather(float* rows, const float* x, const ExpertGroups& groups, std::int64_t dim) {
    thread_pool().parallel_for(groups.rows(), token_grain, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r)
            std::memcpy(rows + r * dim, x + groups.token_of_row(r) * dim, static_cast<std::size_t>(dim) * sizeof(float));
    });
}

void moe_gather_backward(float* dx, const float* drows, const ExpertGroups& groups, std::int64_t dim) {
    const std::int64_t k = groups.top_k;
    thread_pool().parallel_for(groups.tokens, token_grain, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t)
            for (std::int64_t s = 0; s < k; ++s)
                cpu::axpy(dx + t * dim, 1.0f, drows + groups.row_of_slot[static_cast<std::size_t>(t * k + s)] * dim, dim);
    });
}

void moe_combine_forward(float* y, const float* out, const float* weights, const ExpertGroups& groups,
                         std::int64_t dim) {
    const std::int64_t k = groups.top_k;
    thread_pool().parallel_for(groups.tokens, token_grain, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t) {
            float* yt = y + t * dim;
            std::fill(yt, yt + dim, 0.0f);
            for (std::int64_t s = 0; s < k; ++s)
                cpu::axpy(yt, weights[t * k + s], out + groups.row_of_slot[static_cast<std::size_t>(t * k + s)] * dim, dim);
        }
    });
}

void moe_combine_backward(float* dout, float* dweights, const float* dy, const float* out, const float* weights,
                          const ExpertGroups& groups, std::int64_t dim) {
    const std::int64_t k = groups.top_k;
    thread_pool().parallel_for(groups.tokens, token_grain, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t)
            for (std::int64_t s = 0; s < k; ++s) {
                const std::int64_t slot = t * k + s, row = groups.row_of_slot[static_cast<std::size_t>(slot)];
                if (dweights != nullptr) dweights[slot] = cpu::dot(dy + t * dim, out + row * dim, dim);
                if (dout != nullptr)
                    for (std::int64_t i = 0; i < dim; ++i) dout[row * dim + i] = weights[slot] * dy[t * dim + i];
            }
    });
}

void expert_slices(std::vector<const void*>& slices, const void* data, DType type, std::int64_t experts,
                   std::int64_t rows, std::int64_t cols) {
    const auto slice_bytes = static_cast<std::int64_t>(matrix_bytes(type, static_cast<std::uint64_t>(rows * cols)));
    slices.resize(static_cast<std::size_t>(experts));
    for (std::int64_t e = 0; e < experts; ++e)
        slices[static_cast<std::size_t>(e)] = static_cast<const std::uint8_t*>(data) + e * slice_bytes;
}

void expert_matmul_forward(float* y, const float* x, const ExpertMatrices& w, const float* bias,
                           const ExpertGroups& groups, Precision precision) {
    check_groups(groups, w.experts, "the expert stack");
    for (std::int64_t e = 0; e < w.experts; ++e) {
        const std::int64_t first = groups.offsets[static_cast<std::size_t>(e)];
        const std::int64_t count = groups.offsets[static_cast<std::size_t>(e + 1)] - first;
        if (count == 0) continue;
        matmul_forward(y + first * w.rows, x + first * w.cols, w.expert(e), bias != nullptr ? bias + e * w.rows : nullptr,
                       count, precision);
    }
}

void expert_matmul_backward_input(float* dx, const float* dy, const ExpertMatrices& w, const ExpertGroups& groups,
                                  Precision precision) {
    check_groups(groups, w.experts, "the expert stack");
    for (std::int64_t e = 0; e < w.experts; ++e) {
        const std::int64_t first = groups.offsets[static_cast<std::size_t>(e)];
        const std::int64_t count = groups.offsets[static_cast<std::size_t>(e + 1)] - first;
        if (count == 0) continue;
        matmul_backward_input(dx + first * w.cols, dy + first * w.rows, w.expert(e), count, precision);
    }
}

void expert_lora_down_forward(float* xa, const float* x, const float* a, const ExpertGroups& groups,
                              const ExpertLoraShape& s) {
    check_lora(s, groups);
    for_each_expert(groups, [&](std::int64_t e, std::int64_t first, std::int64_t count) {
        cpu::sgemm(false, true, count, s.rank, s.in, 1.0f, x + first * s.in,
                    s.in, a + e * s.rank * s.in, s.in, 0.0f, xa + first * s.rank, s.rank);
    });
}

void expert_lora_up_forward(float* y, const float* xa, const float* b, ExpertLoraRows selected,
                            const ExpertGroups& groups, const ExpertLoraShape& s) {
    check_lora(s, groups);
    check_rows(selected, s);
    for_each_expert(groups, [&](std::int64_t e, std::int64_t first, std::int64_t count) {
        const float* be = gather_b(b, e, selected, s);
        cpu::sgemm(false, true, count, selected.count, s.rank, s.scale,
                    xa + first * s.rank, s.rank, be, s.rank, 1.0f, y + first * selected.count,
                    selected.count);
    });
}

void expert_lora_up_backward(float* dxa, float* db, const float* dy, const float* xa, const float* b,
                             ExpertLoraRows selected, const ExpertGroups& groups, const ExpertLoraShape& s) {
    check_lora(s, groups);
    check_rows(selected, s);
    for_each_expert(groups, [&](std::int64_t e, std::int64_t first, std::int64_t count) {
        const float* dye = dy + first * selected.count;
        if (dxa != nullptr) {
            const float* be = gather_b(b, e, selected, s);
            cpu::sgemm(false, false, count, s.rank, selected.count, s.scale,
                        dye, selected.count, be, s.rank, 1.0f, dxa + first * s.rank, s.rank);
        }
        if (db == nullptr) return;
        // This expert's gradient [count x rank] in scratch, then added to its strided columns.
        float* dbe = scratch(selected.count * s.rank);
        cpu::sgemm(true, false, selected.count, s.rank, count, s.scale, dye,
                    selected.count, xa + first * s.rank, s.rank, 0.0f, dbe, s.rank);
        const std::int64_t stride = s.rank * s.experts;
        for (std::int64_t i = 0; i < selected.count; ++i) {
            float* row = db + (selected.first + i * selected.step) * stride + e;
            for (std::int64_t j = 0; j < s.rank; ++j) row[j * s.experts] += dbe[i * s.rank + j];
        }
    });
}

void expert_lora_down_backward(float* dx, float* da, const float* dxa, const float* x, const float* a,
                               const ExpertGroups& groups, const ExpertLoraShape& s) {
    check_lora(s, groups);
    for_each_expert(groups, [&](std::int64_t e, std::int64_t first, std::int64_t count) {
        if (da != nullptr)
            cpu::sgemm(true, false, s.rank, s.in, count, 1.0f,
                        dxa + first * s.rank, s.rank, x + first * s.in, s.in, 1.0f, da + e * s.rank * s.in,
                        s.in);
        if (dx != nullptr)
            cpu::sgemm(false, false, count, s.in, s.rank, 1.0f,
                        dxa + first * s.rank, s.rank, a + e * s.rank * s.in, s.in, 1.0f, dx + first * s.in,
                        s.in);
    });
}

}  // namespace kindred::kernels
