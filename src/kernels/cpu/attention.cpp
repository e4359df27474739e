// kernels/cpu/attention.cpp — GQA causal attention over the cache, and its backward pass.
// Decode and short chunks take one (token, head) pair per work item: scores into per-thread
// scratch, softmax with the max subtracted, then Σ p·v. Longer chunks (prompt processing) take
// one (head, block of queries) per work item and compute scores and outputs with two sgemm calls;
// the masked part of the score block is computed and discarded, which costs less than it saves.
// The backward pass always takes the sgemm form (training runs hundreds of tokens); see
// kernels/attention.h for how it splits work. In bf16 (AttentionShape::precision) the same work
// items multiply on AMX tiles (kernels/cpu/bf16_gemm.h): every kv head's keys and values are
// packed once per call, in the layouts the items' products read, and each item starts its key
// range at a 32-key tile of those packings.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {
namespace {

// From this many new tokens on, the sgemm path is used.
constexpr std::int64_t blas_min_tokens = 8;
// Queries per sgemm work item: bounds the score block to query_block x positions floats.
constexpr std::int64_t query_block = 64;

float* scratch(std::int64_t n) {
    thread_local std::vector<float> buffer;
    if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
    return buffer.data();
}

// A work item's bf16 operands, per thread: rows of A (queries, dout, P, dS), columns of A (Pᵀ,
// dSᵀ) and a packed B (the item's query or dout rows).
enum class Bf16Scratch { Rows, Columns, Packed };

std::uint16_t* bf16_scratch(Bf16Scratch kind, std::int64_t n) {
    thread_local std::vector<std::uint16_t> buffers[3];
    auto& buffer = buffers[static_cast<int>(kind)];
    if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
    return buffer.data();
}

// The keys query t sees: [first[t], past + t] less the hole [hole_begin[t], hole_end[t]) (the
// documents between a shared prefix document and the query's own; empty without prefix segments).
// first never decreases with t, because windows slide forward, documents are contiguous and
// prefix documents are checked to come in order. Computed on the calling thread into its own
// buffers, which the pool's workers then read.
struct VisibleKeys {
    const std::int64_t* first;
    const std::int64_t* hole_begin;
    const std::int64_t* hole_end;
};

// The softmax of scores[first..last] (sinks only join the denominator) less the hole
// [hole_begin, hole_end) within it, in two halves: softmax_exponentials turns the scores into
// exp(score - max) in place, the hole into 0, and returns the inverse of the denominator;
// softmax_normalize multiplies by it. Entries outside [first, last] are not touched.
float softmax_exponentials(float* scores, std::int64_t first, std::int64_t last, std::int64_t hole_begin,
                           std::int64_t hole_end, const float* sink) {
    float max_score = cpu::max_of(sink != nullptr ? *sink : -std::numeric_limits<float>::infinity(), scores + first,
                                  hole_begin - first);
    max_score = cpu::max_of(max_score, scores + hole_end, last - hole_end + 1);
    float sum = sink != nullptr ? std::exp(*sink - max_score) : 0.0f;
    sum += cpu::exp_shifted(scores + first, scores + first, max_score, hole_begin - first);
    sum += cpu::exp_shifted(scores + hole_end, scores + hole_end, max_score, last - hole_end + 1);
    std::fill(scores + hole_begin, scores + hole_end, 0.0f);
    return 1.0f / sum;
}

void softmax_normalize(float* scores, std::int64_t first, std::int64_t last, std::int64_t hole_begin,
                       std::int64_t hole_end, float inverse) {
    for (std::int64_t p = first; p < hole_begin; ++p) scores[p] *= inverse;
    for (std::int64_t p = hole_end; p <= last; ++p) scores[p] *= inverse;
}

// Turns scores[first..last] into probabilities in place.
void softmax_span(float* scores, std::int64_t first, std::int64_t last, std::int64_t hole_begin,
                  std::int64_t hole_end, const float* sink) {
    softmax_normalize(scores, first, last, hole_begin, hole_end,
                      softmax_exponentials(scores, first, last, hole_begin, hole_end, sink));
}

VisibleKeys visible_keys(const AttentionShape& shape) {
    thread_local std::vector<std::int64_t> first, hole_begin, hole_end;
    const auto tokens = static_cast<std::size_t>(shape.tokens);
    first.resize(tokens);
    hole_begin.resize(tokens);
    hole_end.resize(tokens);
    const std::int64_t positions = shape.past + shape.tokens;
    // Every document's id and first position, in row order: prefix documents are looked up by id.
    thread_local std::vector<std::int32_t> document_ids;
    thread_local std::vector<std::int64_t> document_starts;
    document_ids.clear();
    document_starts.clear();
    if (shape.segment_ids != nullptr)
        for (std::int64_t p = 0; p < positions; ++p) {
            if (p > 0 && shape.segment_ids[p] == shape.segment_ids[p - 1]) continue;
            if (p > 0 && shape.segment_ids[p] < shape.segment_ids[p - 1])
                fail("attention: segment id {} at position {} follows {}; documents must be contiguous",
                     shape.segment_ids[p], p, shape.segment_ids[p - 1]);
            document_ids.push_back(shape.segment_ids[p]);
            document_starts.push_back(p);
        }
    if (shape.prefix_segment_ids != nullptr && shape.segment_ids == nullptr)
        fail("attention: prefix segment ids need segment ids");
    if (shape.prefix_segment_ids != nullptr && shape.window > 0)
        fail("attention: prefix segments with a sliding window are not supported (the window counts row indices)");
    std::size_t document = 0;
    for (std::int64_t p = shape.past; p < positions; ++p) {
        const auto t = static_cast<std::size_t>(p - shape.past);
        std::int64_t document_start = 0;
        if (shape.segment_ids != nullptr) {
            while (document + 1 < document_ids.size() && document_starts[document + 1] <= p) ++document;
            document_start = document_starts[document];
        }
        const std::int64_t window_start = shape.window > 0 ? std::max<std::int64_t>(0, p - shape.window + 1) : 0;
        first[t] = std::max(window_start, document_start);
        hole_begin[t] = hole_end[t] = first[t];
        if (shape.prefix_segment_ids == nullptr) continue;
        const std::int32_t own = document_ids[document], prefix = shape.prefix_segment_ids[p];
        if (prefix != own) {
            const auto before = document_ids.begin() + static_cast<std::ptrdiff_t>(document);
            const auto found = std::lower_bound(document_ids.begin(), before, prefix);
            if (found == before || *found != prefix)
                fail("attention: position {} names prefix segment {}, which is not a document before its own ({})",
                     p, prefix, own);
            const auto index = static_cast<std::size_t>(found - document_ids.begin());
            first[t] = document_starts[index];
            hole_begin[t] = document_starts[index + 1];
            hole_end[t] = document_start;
        }
        if (t > 0 && first[t] < first[t - 1])
            fail("attention: position {} sees from position {}, before position {} of the query before it; prefix "
                 "documents must come in order", p, first[t], first[t - 1]);
    }
    return {first.data(), hole_begin.data(), hole_end.data()};
}

// Where block `block`'s probabilities start within one head's part of the saved probabilities,
// and that part's size (block == number of blocks): blocks are stored [queries x bound] with
// bound = past + t0 + queries, the most keys a block can see.
std::int64_t probability_offset(const AttentionShape& shape, std::int64_t block) {
    std::int64_t offset = 0;
    for (std::int64_t b = 0; b < block; ++b) {
        const std::int64_t t0 = b * query_block, rows = std::min(query_block, shape.tokens - t0);
        offset += rows * (shape.past + t0 + rows);
    }
    return offset;
}

// Whether the sgemm-form products take bf16 operands (AttentionShape::precision on a CPU with AMX-BF16).
bool bf16_operands(const AttentionShape& shape) { return effective_precision(shape.precision) == Precision::BF16; }

void check_heads(const AttentionShape& shape) {
    if (shape.kv_heads <= 0 || shape.heads % shape.kv_heads != 0)
        fail("attention: {} heads cannot share {} kv heads", shape.heads, shape.kv_heads);
}

// Floats between consecutive positions of one kv head.
std::int64_t kv_step(const AttentionShape& shape) {
    return shape.kv_position_stride > 0 ? shape.kv_position_stride : shape.head_dim;
}

// One call's keys and values in bf16, packed per kv head over all positions (bf16_gemm.h's
// layouts), for the products of every work item: transposed ([head_dim x positions], keys as
// columns: S = q·kᵀ, dP = dout·vᵀ) and plain ([positions x head_dim], contracted over keys:
// out = P·v, dq = dS·k). Null where the call needs no such packing. The calling thread packs into
// its own buffers, which the pool's workers then read.
struct PackedKv {
    const std::uint16_t* keys_t = nullptr;
    const std::uint16_t* values_t = nullptr;
    const std::uint16_t* keys = nullptr;
    const std::uint16_t* values = nullptr;
    std::int64_t transposed_head = 0;  // bf16 values per kv head in keys_t, values_t
    std::int64_t plain_head = 0;       // in keys, values
    std::int64_t plain_stride = 0;     // between 16-column blocks of a plain packing (gemm's block_stride)
};

// Packs every kv head of x (k or v, laid out as AttentionShape says) into `out`, in parallel over
// kv heads and 16-column blocks.
const std::uint16_t* pack_heads(std::vector<std::uint16_t>& out, const float* x, const AttentionShape& shape,
                                bool transposed) {
    namespace bf16 = cpu::bf16;
    const std::int64_t positions = shape.past + shape.tokens, head_dim = shape.head_dim, step = kv_step(shape);
    const std::int64_t per_head = transposed ? bf16::packed_elements(head_dim, positions)
                                             : bf16::packed_elements(positions, head_dim);
    const std::int64_t blocks = bf16::round_up(transposed ? positions : head_dim, bf16::block_n) / bf16::block_n;
    out.resize(static_cast<std::size_t>(shape.kv_heads * per_head));
    std::uint16_t* packed = out.data();
    thread_pool().parallel_for(shape.kv_heads * blocks, 4, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
            const std::int64_t g = item / blocks, b = item % blocks, c0 = b * bf16::block_n;
            const float* head = x + g * shape.kv_head_stride;
            std::uint16_t* dst = packed + g * per_head;
            if (transposed)
                bf16::pack_transposed(dst + bf16::packed_offset(head_dim, b), head + c0 * step, step,
                                      std::min(bf16::block_n, positions - c0), head_dim);
            else
                bf16::pack(dst + bf16::packed_offset(positions, b), head + c0, step, positions,
                           std::min(bf16::block_n, head_dim - c0));
        }
    });
    return packed;
}

// The packings a call needs (forward: keys_t and values; backward: keys_t when it recomputes the
// scores, values_t and keys).
PackedKv pack_kv(const float* k, const float* v, const AttentionShape& shape, bool forward, bool scores) {
    namespace bf16 = cpu::bf16;
    thread_local std::vector<std::uint16_t> buffers[4];
    const std::int64_t positions = shape.past + shape.tokens;
    PackedKv packed;
    packed.transposed_head = bf16::packed_elements(shape.head_dim, positions);
    packed.plain_head = bf16::packed_elements(positions, shape.head_dim);
    packed.plain_stride = bf16::packed_offset(positions, 1);
    if (scores) packed.keys_t = pack_heads(buffers[0], k, shape, true);
    if (forward) {
        packed.values = pack_heads(buffers[1], v, shape, false);
    } else {
        packed.values_t = pack_heads(buffers[2], v, shape, true);
        packed.keys = pack_heads(buffers[3], k, shape, false);
    }
    return packed;
}

// The first key a work item computes, given the first its queries see: that one in fp32; in bf16
// the start of its 32-key tile of the packings (keys before the first visible are masked like
// any other invisible key).
std::int64_t block_start(std::int64_t first, const PackedKv* packed) {
    return packed != nullptr ? first / cpu::bf16::block_k * cpu::bf16::block_k : first;
}

// B of a product with keys [lo, lo + span) as columns (lo a multiple of 32), within kv head g's
// transposed packing.
const std::uint16_t* key_columns(const std::uint16_t* transposed, const PackedKv& packed, std::int64_t g,
                                 std::int64_t head_dim, std::int64_t lo) {
    return transposed + g * packed.transposed_head + cpu::bf16::packed_offset(head_dim, lo / cpu::bf16::block_n);
}

// B of a product contracting over keys [lo, ...) (lo a multiple of 32): kv head g's plain packing
// from tile row lo / 32, read with block_stride packed.plain_stride.
const std::uint16_t* key_rows(const std::uint16_t* plain, const PackedKv& packed, std::int64_t g, std::int64_t lo) {
    return plain + g * packed.plain_head + lo * cpu::bf16::block_n;
}

// c [rows x span] = scale · a · xᵀ for keys [lo, lo + span) of kv head g, x the keys or values (a:
// the block's rows of one head, row stride row_stride; xh: x's key lo; S = scale · q·kᵀ and
// dP = dout·vᵀ). bf16: a rounded, against x's transposed packing, the sums scaled in fp32
// afterwards. The forward and the backward's recomputation share it, so that recomputed
// probabilities are bit-identical to saved ones.
void column_product(float* c, const float* a, std::int64_t row_stride, const float* xh, const std::uint16_t* x_transposed,
                    std::int64_t g, std::int64_t lo, std::int64_t rows, std::int64_t span, float scale,
                    const AttentionShape& shape, const PackedKv* packed) {
    const std::int64_t head_dim = shape.head_dim;
    if (packed == nullptr) {
        cpu::sgemm(false, true, rows, span, head_dim, scale, a, row_stride, xh, kv_step(shape), 0.0f, c, span);
        return;
    }
    const std::int64_t lda = cpu::bf16::round_up(head_dim, cpu::bf16::block_k);
    std::uint16_t* a16 = bf16_scratch(Bf16Scratch::Rows, rows * lda);
    cpu::bf16::round_rows(a16, lda, a, row_stride, rows, head_dim);
    cpu::bf16::gemm(c, span, a16, lda, key_columns(x_transposed, *packed, g, head_dim, lo), rows, span, head_dim, false);
    if (scale != 1.0f)
        for (std::int64_t i = 0; i < rows * span; ++i) c[i] *= scale;
}

// c [m x head_dim] (row stride ldc) (+)= a · x over keys [lo, lo + k) of kv head g, x the keys or
// values: a [m x k] fp32 (row stride k) in sgemm, or rounded to bf16 against x's plain packing.
// row_scales (bf16 only, or null): c's row r (not accumulating) is then multiplied by row_scales[r].
void key_product(float* c, std::int64_t ldc, const float* a, const float* x, const std::uint16_t* x_plain,
                 std::int64_t g, std::int64_t lo, std::int64_t m, std::int64_t k, bool accumulate,
                 const AttentionShape& shape, const PackedKv* packed, const float* row_scales = nullptr) {
    const std::int64_t head_dim = shape.head_dim;
    if (packed == nullptr) {
        cpu::sgemm(false, false, m, head_dim, k, 1.0f, a, k, x, kv_step(shape), accumulate ? 1.0f : 0.0f, c, ldc);
        return;
    }
    const std::int64_t lda = cpu::bf16::round_up(k, cpu::bf16::block_k);
    std::uint16_t* a16 = bf16_scratch(Bf16Scratch::Rows, m * lda);
    cpu::bf16::round_rows(a16, lda, a, k, m, k);
    cpu::bf16::gemm(c, ldc, a16, lda, key_rows(x_plain, *packed, g, lo), m, head_dim, k, accumulate,
                    packed->plain_stride);
    if (row_scales != nullptr)
        for (std::int64_t r = 0; r < m; ++r)
            for (std::int64_t i = 0; i < head_dim; ++i) c[r * ldc + i] *= row_scales[r];
}

// partial [span x head_dim] += aᵀ · b: a [rows x span] (row stride span), b the block's rows of one
// head (row stride row_stride). bf16: aᵀ rounded, b packed per item.
void transposed_product(float* partial, const float* a, const float* b, std::int64_t row_stride, std::int64_t rows,
                        std::int64_t span, std::int64_t head_dim, const PackedKv* packed) {
    if (packed == nullptr) {
        cpu::sgemm(true, false, span, head_dim, rows, 1.0f, a, span, b, row_stride, 1.0f, partial, head_dim);
        return;
    }
    const std::int64_t lda = cpu::bf16::round_up(rows, cpu::bf16::block_k);
    std::uint16_t* a16 = bf16_scratch(Bf16Scratch::Columns, span * lda);
    cpu::bf16::round_columns(a16, lda, a, span, rows, span);
    std::uint16_t* b16 = bf16_scratch(Bf16Scratch::Packed, cpu::bf16::packed_elements(rows, head_dim));
    cpu::bf16::pack(b16, b, row_stride, rows, head_dim);
    cpu::bf16::gemm(partial, head_dim, a16, lda, b16, span, head_dim, rows, true);
}

void attention_per_query(float* out, const float* q, const float* k, const float* v, const AttentionShape& shape,
                         const VisibleKeys& visible) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, group = heads / shape.kv_heads;
    const std::int64_t positions = shape.past + shape.tokens, step = kv_step(shape);
    thread_pool().parallel_for(shape.tokens * heads, 1, [&](std::int64_t begin, std::int64_t end) {
        float* scores = scratch(positions);
        for (std::int64_t item = begin; item < end; ++item) {
            const std::int64_t t = item / heads, h = item % heads;
            const std::int64_t position = shape.past + t, first = visible.first[t];
            const std::int64_t hole_begin = visible.hole_begin[t], hole_end = visible.hole_end[t];
            const float* qv = q + item * head_dim;
            const float* kh = k + (h / group) * shape.kv_head_stride;
            const float* vh = v + (h / group) * shape.kv_head_stride;
            for (std::int64_t p = first; p <= position; ++p)
                scores[p] = p >= hole_begin && p < hole_end ? 0.0f : cpu::dot(qv, kh + p * step, head_dim) * shape.scale;
            softmax_span(scores, first, position, hole_begin, hole_end, shape.sinks != nullptr ? shape.sinks + h : nullptr);
            float* o = out + item * head_dim;
            std::fill(o, o + head_dim, 0.0f);
            for (std::int64_t p = first; p <= position; ++p) cpu::axpy(o, scores[p], vh + p * step, head_dim);
        }
    });
}

// probabilities null: scores go to per-thread scratch; else they are kept there (see attention.h).
// packed: the bf16 operands (null in fp32).
void attention_blocked(float* out, float* probabilities, const float* q, const float* k, const float* v,
                       const AttentionShape& shape, const VisibleKeys& visible, const PackedKv* packed) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, group = heads / shape.kv_heads;
    const std::int64_t row_stride = heads * head_dim;  // between tokens in q and out
    const std::int64_t step = kv_step(shape);
    const std::int64_t blocks = (shape.tokens + query_block - 1) / query_block;
    const std::int64_t per_head = probabilities != nullptr ? probability_offset(shape, blocks) : 0;
    thread_pool().parallel_for(heads * blocks, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
            const std::int64_t h = item / blocks, t0 = (item % blocks) * query_block;
            const std::int64_t rows = std::min(query_block, shape.tokens - t0);
            // Keys any query of the block can see: within [lo, hi].
            const std::int64_t g = h / group, lo = block_start(visible.first[t0], packed);
            const std::int64_t hi = shape.past + t0 + rows - 1, span = hi - lo + 1;
            const float* kh = k + g * shape.kv_head_stride + lo * step;
            const float* vh = v + g * shape.kv_head_stride + lo * step;
            const float* qh = q + t0 * row_stride + h * head_dim;
            float* scores = probabilities != nullptr
                                ? probabilities + h * per_head + probability_offset(shape, item % blocks)
                                : scratch(rows * span);
            column_product(scores, qh, row_stride, kh, packed != nullptr ? packed->keys_t : nullptr, g, lo, rows, span,
                           shape.scale, shape, packed);
            // fp32: out = P · v. bf16, as torch's CPU flash attention: the exponentials are rounded
            // before they are normalized (a row's largest is exactly 1), out = bf16(exp) · v is divided
            // by the fp32 sum afterwards, and the probabilities are normalized for the backward.
            float inverses[query_block];
            for (std::int64_t r = 0; r < rows; ++r) {
                float* row = scores + r * span;
                const std::int64_t position = shape.past + t0 + r;
                const std::int64_t first = visible.first[t0 + r] - lo, last = position - lo;
                const std::int64_t hole_begin = visible.hole_begin[t0 + r] - lo, hole_end = visible.hole_end[t0 + r] - lo;
                inverses[r] = softmax_exponentials(row, first, last, hole_begin, hole_end,
                                                   shape.sinks != nullptr ? shape.sinks + h : nullptr);
                if (packed == nullptr) softmax_normalize(row, first, last, hole_begin, hole_end, inverses[r]);
                std::fill(row, row + first, 0.0f);
                std::fill(row + last + 1, row + span, 0.0f);
            }
            key_product(out + t0 * row_stride + h * head_dim, row_stride, scores, vh,
                        packed != nullptr ? packed->values : nullptr, g, lo, rows, span, false, shape, packed,
                        packed != nullptr ? inverses : nullptr);
            if (packed != nullptr)
                for (std::int64_t r = 0; r < rows; ++r)
                    softmax_normalize(scores + r * span, visible.first[t0 + r] - lo, shape.past + t0 + r - lo,
                                      visible.hole_begin[t0 + r] - lo, visible.hole_end[t0 + r] - lo, inverses[r]);
        }
    });
}

// One backward work item, (query head h, block of queries): recomputes scores S and
// dP = dout · vᵀ, turns S into probabilities P, and with D = Σ P·dP (= dout · out) forms
// dS = scale · P (dP − D); then dq += dS · k (rows only this item writes), and the kv head's
// dv += Pᵀ · dout and dk += dSᵀ · q into the calling thread's own partial sums.
// With `saved` (the forward's probabilities of this item) the first product and the softmax are
// skipped: P is read from there instead. packed: the bf16 operands (null in fp32).
void attention_backward_block(float* dq, float* dk_partial, float* dv_partial, const float* dout, const float* saved,
                              const float* q, const float* k, const float* v, const AttentionShape& shape,
                              const VisibleKeys& visible, const PackedKv* packed, std::int64_t h, std::int64_t t0) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, kv = h / (heads / shape.kv_heads);
    const std::int64_t row_stride = heads * head_dim, step = kv_step(shape);
    const std::int64_t rows = std::min(query_block, shape.tokens - t0);
    const std::int64_t lo = block_start(visible.first[t0], packed), span = shape.past + t0 + rows - lo;
    const float* kh = k + kv * shape.kv_head_stride + lo * step;
    const float* vh = v + kv * shape.kv_head_stride + lo * step;
    const std::int64_t offset = t0 * row_stride + h * head_dim;
    const std::int64_t partial_offset = (kv * (shape.past + shape.tokens) + lo) * head_dim;
    float* grads = scratch((saved != nullptr ? 1 : 2) * rows * span);
    float* scores = saved != nullptr ? nullptr : grads + rows * span;
    if (saved == nullptr)
        column_product(scores, q + offset, row_stride, kh, packed != nullptr ? packed->keys_t : nullptr, kv, lo, rows,
                       span, shape.scale, shape, packed);
    column_product(grads, dout + offset, row_stride, vh, packed != nullptr ? packed->values_t : nullptr, kv, lo, rows,
                   span, 1.0f, shape, packed);
    for (std::int64_t r = 0; r < rows; ++r) {
        float* g = grads + r * span;
        const std::int64_t first = visible.first[t0 + r] - lo, count = shape.past + t0 + r - lo - first + 1;
        const float* p;
        if (saved != nullptr) {
            p = saved + r * span;
        } else {
            // The forward's softmax, so that P is bit-identical to the saved one.
            float* recomputed = scores + r * span;
            softmax_span(recomputed, first, first + count - 1, visible.hole_begin[t0 + r] - lo,
                         visible.hole_end[t0 + r] - lo, shape.sinks != nullptr ? shape.sinks + h : nullptr);
            std::fill(recomputed, recomputed + first, 0.0f);
            std::fill(recomputed + first + count, recomputed + span, 0.0f);
            p = recomputed;
        }
        // A sink adds a probability without a value (its dP is 0), so dS keeps the form
        // P (dP − Σ P·dP) with the sink's share simply missing from P's row sum.
        // Vector partial sums: a single running sum was a latency-bound chain, ~15% of this pass.
        const float dot = cpu::dot(p + first, g + first, count);
        for (std::int64_t j = first; j < first + count; ++j) g[j] = shape.scale * p[j] * (g[j] - dot);
        std::fill(g, g + first, 0.0f);
        std::fill(g + first + count, g + span, 0.0f);
    }
    key_product(dq + offset, row_stride, grads, kh, packed != nullptr ? packed->keys : nullptr, kv, lo, rows, span, true,
                shape, packed);
    transposed_product(dv_partial + partial_offset, saved != nullptr ? saved : scores, dout + offset, row_stride, rows,
                       span, head_dim, packed);
    transposed_product(dk_partial + partial_offset, grads, q + offset, row_stride, rows, span, head_dim, packed);
}

}  // namespace

void attention_forward(float* out, const float* q, const float* k, const float* v, const AttentionShape& shape) {
    check_heads(shape);
    const VisibleKeys visible = visible_keys(shape);
    if (shape.tokens >= blas_min_tokens) {
        const PackedKv packed = bf16_operands(shape) ? pack_kv(k, v, shape, true, true) : PackedKv{};
        attention_blocked(out, nullptr, q, k, v, shape, visible, bf16_operands(shape) ? &packed : nullptr);
    } else {
        attention_per_query(out, q, k, v, shape, visible);
    }
}

std::int64_t attention_probability_floats(const AttentionShape& shape) {
    const std::int64_t blocks = (shape.tokens + query_block - 1) / query_block;
    return shape.heads * probability_offset(shape, blocks);
}

void attention_forward_saving(float* out, float* probabilities, const float* q, const float* k, const float* v,
                              const AttentionShape& shape) {
    check_heads(shape);
    const VisibleKeys visible = visible_keys(shape);
    const PackedKv packed = bf16_operands(shape) ? pack_kv(k, v, shape, true, true) : PackedKv{};
    attention_blocked(out, probabilities, q, k, v, shape, visible, bf16_operands(shape) ? &packed : nullptr);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const AttentionShape& shape) {
    attention_backward_saved(dq, dk, dv, dout, nullptr, q, k, v, shape);
}

// probabilities null: attention_backward (recomputes them).
void attention_backward_saved(float* dq, float* dk, float* dv, const float* dout, const float* probabilities,
                              const float* q, const float* k, const float* v, const AttentionShape& shape) {
    check_heads(shape);
    if (shape.tokens <= 0) return;
    const VisibleKeys visible = visible_keys(shape);
    const std::int64_t head_dim = shape.head_dim, positions = shape.past + shape.tokens, step = kv_step(shape);
    const std::int64_t blocks = (shape.tokens + query_block - 1) / query_block, items = shape.heads * blocks;
    const std::int64_t kv_floats = shape.kv_heads * positions * head_dim;  // one thread's dk (or dv)
    const std::int64_t per_head = probabilities != nullptr ? probability_offset(shape, blocks) : 0;
    const PackedKv bf16 = bf16_operands(shape) ? pack_kv(k, v, shape, false, probabilities == nullptr) : PackedKv{};
    const PackedKv* packed = bf16_operands(shape) ? &bf16 : nullptr;
    // Per-thread partial dk and dv, compact [kv_heads x positions x head_dim] each, in the calling
    // thread's buffer (grown once, then reused; `scratch` is taken, the caller is also a worker).
    // (Workers must use the pointer: the name `partials` in a lambda means the running thread's.)
    thread_local std::vector<float> partials;
    partials.resize(static_cast<std::size_t>(thread_pool().size() * 2 * kv_floats));
    float* const partial_sums = partials.data();
    int used_threads = 1;
    thread_pool().run([&](int thread, int threads) {
        if (thread == 0) used_threads = threads;
        float* dk_partial = partial_sums + thread * 2 * kv_floats;
        float* dv_partial = dk_partial + kv_floats;
        std::fill(dk_partial, dk_partial + 2 * kv_floats, 0.0f);
        // Strided items: later query blocks see more keys, so contiguous chunks would be uneven.
        for (std::int64_t item = thread; item < items; item += threads) {
            const float* saved = probabilities != nullptr ? probabilities + (item / blocks) * per_head +
                                                                probability_offset(shape, item % blocks)
                                                          : nullptr;
            attention_backward_block(dq, dk_partial, dv_partial, dout, saved, q, k, v, shape, visible, packed,
                                     item / blocks, (item % blocks) * query_block);
        }
    });
    thread_pool().parallel_for(shape.kv_heads * positions, 16, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t index = begin; index < end; ++index) {
            const std::int64_t g = index / positions, p = index % positions;
            float* dk_row = dk + g * shape.kv_head_stride + p * step;
            float* dv_row = dv + g * shape.kv_head_stride + p * step;
            for (int thread = 0; thread < used_threads; ++thread) {
                const float* partial = partial_sums + thread * 2 * kv_floats + index * head_dim;
                cpu::axpy(dk_row, 1.0f, partial, head_dim);
                cpu::axpy(dv_row, 1.0f, partial + kv_floats, head_dim);
            }
        }
    });
}

}  // namespace kindred::kernels
