// kernels/cpu/attention.cpp — GQA causal attention over the cache, and its backward pass.
// Decode and short chunks take one (token, head) pair per work item: scores into per-thread
// scratch, softmax with the max subtracted, then Σ p·v. Longer chunks (prompt processing) take
// one (head, block of queries) per work item and compute scores and outputs with two sgemm calls;
// the masked part of the score block is computed and discarded, which costs less than it saves.
// A KV cache kept in F16 or Q8_0 (AttentionShape::kv_type) is read as stored by decode's dots and
// sums (cpu::F16Row, cpu::Q8_0Row: half or about a quarter of fp32's bytes, where decode at a long
// context is bound by reading the cache), and widened to fp32 once per call for the sgemm path,
// which reads every key many times; both give the bits of fp32 attention over the read-back values.
// The backward pass always takes the sgemm form (training runs hundreds of tokens); see
// kernels/attention.h for how it splits work. In bf16 (AttentionShape::precision) the products
// run on AMX tiles (kernels/cpu/bf16_gemm.h) and a work item is (kv head, block of one document's
// queries): it packs the keys and values it reads once for the query heads that share them, and
// sums every document's terms in tile slots that depend only on positions within the document,
// so that a document's results are the same bits wherever it sits in a packed row and whatever
// documents share the row (which data-parallel ranks, splitting a step's rows, rely on).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/dequantize.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {
namespace {

// From this many new tokens on, the sgemm path is used.
constexpr std::int64_t blas_min_tokens = 8;
// Queries per sgemm work item: bounds the score block to query_block x positions floats.
constexpr std::int64_t query_block = 64;

// A work item's fp32 buffer, per thread: its scores (or score gradients).
enum class Scratch { Scores };

float* scratch(std::int64_t n) { return cpu::thread_scratch<float, Scratch::Scores>(n); }

// A work item's bf16 operands, per thread: rows of A (queries, dout, P, dS), columns of A (Pᵀ,
// dSᵀ), a packed B (the item's query or dout rows) and its keys and values (PackedKv).
enum class Bf16Scratch { Rows, Columns, Packed, KeysT, ValuesT, Keys };

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

// A work item's block of queries [t0, t0 + rows), the first key any of them sees (lo: the item
// computes the span keys [lo, past + t0 + rows)), and where its probabilities start within one
// head's part of the saved probabilities: blocks are stored [rows x span] in that order, spaced by
// rows x (past + t0 + rows), the most keys a block can see.
struct QueryBlock {
    std::int64_t t0, rows, lo, span, offset;
};

struct QueryBlocks {
    const QueryBlock* blocks;
    std::int64_t count;
    std::int64_t per_head;  // floats of one head's saved probabilities
};

// fp32 cuts the queries into blocks of query_block from the first; bf16 (by_document) cuts each
// document's queries into blocks of query_block from the document's first, so that a query's
// place in its block, and its block's first key, depend only on positions within its document.
// In the calling thread's buffer.
QueryBlocks query_blocks(const AttentionShape& shape, const VisibleKeys& visible, bool by_document) {
    thread_local std::vector<QueryBlock> blocks;
    blocks.clear();
    std::int64_t offset = 0;
    for (std::int64_t t0 = 0; t0 < shape.tokens;) {
        std::int64_t rows = std::min(query_block, shape.tokens - t0);
        if (by_document && shape.segment_ids != nullptr) {
            const std::int32_t* ids = shape.segment_ids + shape.past + t0;
            rows = std::find_if(ids, ids + rows, [&](std::int32_t id) { return id != ids[0]; }) - ids;
        }
        blocks.push_back({t0, rows, visible.first[t0], shape.past + t0 + rows - visible.first[t0], offset});
        offset += rows * (shape.past + t0 + rows);
        t0 += rows;
    }
    return {blocks.data(), static_cast<std::int64_t>(blocks.size()), offset};
}

// Whether the sgemm-form products take bf16 operands (AttentionShape::precision on a CPU with AMX-BF16).
bool bf16_operands(const AttentionShape& shape) { return effective_precision(shape.precision) == Precision::BF16; }

void check_heads(const AttentionShape& shape) {
    if (shape.kv_heads <= 0 || shape.heads % shape.kv_heads != 0)
        fail("attention: {} heads cannot share {} kv heads", shape.heads, shape.kv_heads);
}

// The saving forward and the backward read fp32 keys and values only (training's projections).
void require_f32_kv(const AttentionShape& shape, const char* pass) {
    if (shape.kv_type != DType::F32) fail("attention: {} takes fp32 keys and values, not {}", pass, dtype_name(shape.kv_type));
}

// Floats between consecutive positions of one kv head.
std::int64_t kv_step(const AttentionShape& shape) {
    return shape.kv_position_stride > 0 ? shape.kv_position_stride : shape.head_dim;
}

// One bf16 work item's keys and values [lo, lo + span) of its kv head, packed once (bf16_gemm.h's
// layouts, in the thread's scratch) for the query heads that share them: transposed
// ([head_dim x span], keys as columns: S = q·kᵀ, dP = dout·vᵀ) and plain ([span x head_dim],
// contracted over keys: out = P·v, dq = dS·k). Null where the item needs no such packing.
struct PackedKv {
    const std::uint16_t* keys_t = nullptr;
    const std::uint16_t* values_t = nullptr;
    const std::uint16_t* keys = nullptr;
    const std::uint16_t* values = nullptr;
};

// forward: keys_t and values; else (backward) values_t and keys, and keys_t when `scores` (the
// backward recomputes the probabilities).
PackedKv pack_item(const float* kh, const float* vh, const AttentionShape& shape, std::int64_t span, bool forward,
                   bool scores) {
    namespace bf16 = cpu::bf16;
    const std::int64_t head_dim = shape.head_dim, step = kv_step(shape);
    const std::int64_t transposed = bf16::packed_elements(head_dim, span), plain = bf16::packed_elements(span, head_dim);
    PackedKv packed;
    if (scores) {
        std::uint16_t* keys_t = cpu::thread_scratch<std::uint16_t, Bf16Scratch::KeysT>(transposed);
        bf16::pack_transposed(keys_t, kh, step, span, head_dim);
        packed.keys_t = keys_t;
    }
    std::uint16_t* second = cpu::thread_scratch<std::uint16_t, Bf16Scratch::ValuesT>(forward ? plain : transposed);
    if (forward) {
        bf16::pack(second, vh, step, span, head_dim);
        packed.values = second;
    } else {
        bf16::pack_transposed(second, vh, step, span, head_dim);
        packed.values_t = second;
        std::uint16_t* keys = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Keys>(plain);
        bf16::pack(keys, kh, step, span, head_dim);
        packed.keys = keys;
    }
    return packed;
}

// Work items: fp32 (query head, block of queries), bf16 (kv head, block), as `items` counts them.
std::int64_t work_items(const AttentionShape& shape, const QueryBlocks& blocks, bool bf16) {
    return (bf16 ? shape.kv_heads : shape.heads) * blocks.count;
}

// Calls run(block, h, packed) for each query head of work item `item`: in fp32 its one head, with
// packed null; in bf16 every head of its kv head, with that head's keys and values of the block
// packed once for all of them (pack_item's forward and scores).
template <typename Run>
void for_each_head(std::int64_t item, const QueryBlocks& blocks, bool bf16, const float* k, const float* v,
                   const AttentionShape& shape, bool forward, bool scores, const Run& run) {
    const QueryBlock& block = blocks.blocks[item % blocks.count];
    const std::int64_t head = item / blocks.count;  // a query head in fp32, a kv head in bf16
    if (!bf16) {
        run(block, head, nullptr);
        return;
    }
    const std::int64_t group = shape.heads / shape.kv_heads, offset = head * shape.kv_head_stride + block.lo * kv_step(shape);
    const PackedKv packed = pack_item(k + offset, v + offset, shape, block.span, forward, scores);
    for (std::int64_t h = head * group; h < (head + 1) * group; ++h) run(block, h, &packed);
}

// c [rows x span] = scale · a · xᵀ for an item's keys [lo, lo + span), x its keys or values (a:
// the block's rows of one head, row stride row_stride; xh: x's key lo; S = scale · q·kᵀ and
// dP = dout·vᵀ): sgemm, or with x_transposed (x's packing, PackedKv) a rounded against it, the
// sums scaled in fp32 afterwards. The forward and the backward's recomputation share it, so that
// recomputed probabilities are bit-identical to saved ones.
void column_product(float* c, const float* a, std::int64_t row_stride, const float* xh,
                    const std::uint16_t* x_transposed, std::int64_t rows, std::int64_t span, float scale,
                    const AttentionShape& shape) {
    const std::int64_t head_dim = shape.head_dim;
    if (x_transposed == nullptr) {
        cpu::sgemm(false, true, rows, span, head_dim, scale, a, row_stride, xh, kv_step(shape), 0.0f, c, span);
        return;
    }
    const std::int64_t lda = cpu::bf16::round_up(head_dim, cpu::bf16::block_k);
    std::uint16_t* a16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Rows>(rows * lda);
    cpu::bf16::round_rows(a16, lda, a, row_stride, rows, head_dim);
    cpu::bf16::gemm(c, span, a16, lda, x_transposed, rows, span, head_dim, false);
    if (scale != 1.0f)
        for (std::int64_t i = 0; i < rows * span; ++i) c[i] *= scale;
}

// c [m x head_dim] (row stride ldc) (+)= a · x over an item's keys [lo, lo + k), x its keys or
// values (xh: x's key lo): a [m x k] (row stride k) in sgemm, or with x_plain (x's packing) a
// rounded against it. row_scales (bf16 only, or null): c's row r (not accumulating) is then
// multiplied by row_scales[r].
void key_product(float* c, std::int64_t ldc, const float* a, const float* xh, const std::uint16_t* x_plain,
                 std::int64_t m, std::int64_t k, bool accumulate, const AttentionShape& shape,
                 const float* row_scales = nullptr) {
    const std::int64_t head_dim = shape.head_dim;
    if (x_plain == nullptr) {
        cpu::sgemm(false, false, m, head_dim, k, 1.0f, a, k, xh, kv_step(shape), accumulate ? 1.0f : 0.0f, c, ldc);
        return;
    }
    const std::int64_t lda = cpu::bf16::round_up(k, cpu::bf16::block_k);
    std::uint16_t* a16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Rows>(m * lda);
    cpu::bf16::round_rows(a16, lda, a, k, m, k);
    cpu::bf16::gemm(c, ldc, a16, lda, x_plain, m, head_dim, k, accumulate);
    if (row_scales != nullptr)
        for (std::int64_t r = 0; r < m; ++r)
            for (std::int64_t i = 0; i < head_dim; ++i) c[r * ldc + i] *= row_scales[r];
}

// partial [span x head_dim] += aᵀ · b: a [rows x span] (row stride span), b the block's rows of one
// head (row stride row_stride). bf16: aᵀ rounded, b packed.
void transposed_product(float* partial, const float* a, const float* b, std::int64_t row_stride, std::int64_t rows,
                        std::int64_t span, std::int64_t head_dim, bool bf16) {
    if (!bf16) {
        cpu::sgemm(true, false, span, head_dim, rows, 1.0f, a, span, b, row_stride, 1.0f, partial, head_dim);
        return;
    }
    const std::int64_t lda = cpu::bf16::round_up(rows, cpu::bf16::block_k);
    std::uint16_t* a16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Columns>(span * lda);
    cpu::bf16::round_columns(a16, lda, a, span, rows, span);
    std::uint16_t* b16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Packed>(cpu::bf16::packed_elements(rows, head_dim));
    cpu::bf16::pack(b16, b, row_stride, rows, head_dim);
    cpu::bf16::gemm(partial, head_dim, a16, lda, b16, span, head_dim, rows, true);
}

// The kv row at element `element` of k or v stored as shape.kv_type, for dot_row and axpy_row.
template <typename Row>
Row kv_row(const void* base, std::int64_t element) {
    if constexpr (std::is_same_v<Row, cpu::F32Row>) return {static_cast<const float*>(base) + element};
    if constexpr (std::is_same_v<Row, cpu::F16Row>) return {static_cast<const std::uint16_t*>(base) + element};
    if constexpr (std::is_same_v<Row, cpu::Q8_0Row>)
        return {static_cast<const std::uint8_t*>(base) + element / Row::block * Row::block_bytes};
}

// Row: how k and v are stored (cpu::F32Row, or a narrow cache's F16Row / Q8_0Row, read as they
// are dotted and summed, the same bits as over their fp32 read-back).
template <typename Row>
void attention_per_query(float* out, const float* q, const void* k, const void* v, const AttentionShape& shape,
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
            const std::int64_t head = (h / group) * shape.kv_head_stride;
            for (std::int64_t p = first; p <= position; ++p)
                scores[p] = p >= hole_begin && p < hole_end
                                ? 0.0f
                                : cpu::dot_row(qv, kv_row<Row>(k, head + p * step), head_dim) * shape.scale;
            softmax_span(scores, first, position, hole_begin, hole_end, shape.sinks != nullptr ? shape.sinks + h : nullptr);
            float* o = out + item * head_dim;
            std::fill(o, o + head_dim, 0.0f);
            cpu::axpy_rows(o, scores, first, position, [&](std::int64_t p) { return kv_row<Row>(v, head + p * step); },
                           head_dim);
        }
    });
}

// Query head h over one block: scores, their softmax (into `scores`, [rows x span]), out.
// packed: the item's bf16 keys and values (null in fp32).
void attend_block(float* out, float* scores, const float* q, const float* k, const float* v,
                  const AttentionShape& shape, const VisibleKeys& visible, const QueryBlock& block, std::int64_t h,
                  const PackedKv* packed) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, g = h / (heads / shape.kv_heads);
    const std::int64_t row_stride = heads * head_dim;  // between tokens in q and out
    const std::int64_t step = kv_step(shape), t0 = block.t0, rows = block.rows, lo = block.lo, span = block.span;
    const float* kh = k + g * shape.kv_head_stride + lo * step;
    const float* vh = v + g * shape.kv_head_stride + lo * step;
    column_product(scores, q + t0 * row_stride + h * head_dim, row_stride, kh,
                   packed != nullptr ? packed->keys_t : nullptr, rows, span, shape.scale, shape);
    // fp32: out = P · v. bf16, as torch's CPU flash attention: the exponentials are rounded before
    // they are normalized (a row's largest is exactly 1), out = bf16(exp) · v is divided by the fp32
    // sum afterwards, and the probabilities are normalized for the backward.
    float inverses[query_block];
    for (std::int64_t r = 0; r < rows; ++r) {
        float* row = scores + r * span;
        const std::int64_t first = visible.first[t0 + r] - lo, last = shape.past + t0 + r - lo;
        const std::int64_t hole_begin = visible.hole_begin[t0 + r] - lo, hole_end = visible.hole_end[t0 + r] - lo;
        inverses[r] = softmax_exponentials(row, first, last, hole_begin, hole_end,
                                           shape.sinks != nullptr ? shape.sinks + h : nullptr);
        if (packed == nullptr) softmax_normalize(row, first, last, hole_begin, hole_end, inverses[r]);
        std::fill(row, row + first, 0.0f);
        std::fill(row + last + 1, row + span, 0.0f);
    }
    key_product(out + t0 * row_stride + h * head_dim, row_stride, scores, vh,
                packed != nullptr ? packed->values : nullptr, rows, span, false, shape,
                packed != nullptr ? inverses : nullptr);
    if (packed != nullptr)
        for (std::int64_t r = 0; r < rows; ++r)
            softmax_normalize(scores + r * span, visible.first[t0 + r] - lo, shape.past + t0 + r - lo,
                              visible.hole_begin[t0 + r] - lo, visible.hole_end[t0 + r] - lo, inverses[r]);
}

// probabilities null: scores go to per-thread scratch; else they are kept there (see attention.h).
// Work items: fp32 (query head, block); bf16 (kv head, block), packing the block's keys and values
// once for the heads that share them.
void attention_blocked(float* out, float* probabilities, const float* q, const float* k, const float* v,
                       const AttentionShape& shape, const VisibleKeys& visible) {
    const bool bf16 = bf16_operands(shape);
    const QueryBlocks blocks = query_blocks(shape, visible, bf16);
    thread_pool().parallel_for(work_items(shape, blocks, bf16), 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item)
            for_each_head(item, blocks, bf16, k, v, shape, true, true,
                          [&](const QueryBlock& block, std::int64_t h, const PackedKv* packed) {
                              float* scores = probabilities != nullptr ? probabilities + h * blocks.per_head + block.offset
                                                                       : scratch(block.rows * block.span);
                              attend_block(out, scores, q, k, v, shape, visible, block, h, packed);
                          });
    });
}

// One backward work item, (query head h, block of queries): recomputes scores S and
// dP = dout · vᵀ, turns S into probabilities P, and with D = Σ P·dP (= dout · out) forms
// dS = scale · P (dP − D); then dq += dS · k (rows only this item writes), and the kv head's
// dv += Pᵀ · dout and dk += dSᵀ · q into the calling thread's own partial sums.
// With `saved` (the forward's probabilities of this item) the first product and the softmax are
// skipped: P is read from there instead. packed: the item's bf16 keys and values (null in fp32).
void attention_backward_block(float* dq, float* dk_partial, float* dv_partial, const float* dout, const float* saved,
                              const float* q, const float* k, const float* v, const AttentionShape& shape,
                              const VisibleKeys& visible, const QueryBlock& block, std::int64_t h,
                              const PackedKv* packed) {
    const std::int64_t heads = shape.heads, head_dim = shape.head_dim, kv = h / (heads / shape.kv_heads);
    const std::int64_t row_stride = heads * head_dim, step = kv_step(shape);
    const std::int64_t t0 = block.t0, rows = block.rows, lo = block.lo, span = block.span;
    const float* kh = k + kv * shape.kv_head_stride + lo * step;
    const float* vh = v + kv * shape.kv_head_stride + lo * step;
    const std::int64_t offset = t0 * row_stride + h * head_dim;
    const std::int64_t partial_offset = (kv * (shape.past + shape.tokens) + lo) * head_dim;
    float* grads = scratch((saved != nullptr ? 1 : 2) * rows * span);
    float* scores = saved != nullptr ? nullptr : grads + rows * span;
    if (saved == nullptr)
        column_product(scores, q + offset, row_stride, kh, packed != nullptr ? packed->keys_t : nullptr, rows, span,
                       shape.scale, shape);
    column_product(grads, dout + offset, row_stride, vh, packed != nullptr ? packed->values_t : nullptr, rows, span,
                   1.0f, shape);
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
    key_product(dq + offset, row_stride, grads, kh, packed != nullptr ? packed->keys : nullptr, rows, span, true, shape);
    transposed_product(dv_partial + partial_offset, saved != nullptr ? saved : scores, dout + offset, row_stride, rows,
                       span, head_dim, packed != nullptr);
    transposed_product(dk_partial + partial_offset, grads, q + offset, row_stride, rows, span, head_dim,
                       packed != nullptr);
}

// Positions of one kv head read back per work item of widen_kv: enough elements that a work item
// outweighs its dispatch, few enough that a long cache splits over every thread.
constexpr std::int64_t widen_positions = 256;

// Refuses a kv_type attention cannot read, or a narrow cache not laid out as one of whole blocks.
void check_kv_layout(const AttentionShape& shape) {
    if (shape.kv_type == DType::F32) return;
    const DTypeInfo& info = dtype_info(shape.kv_type);
    const auto block = static_cast<std::int64_t>(info.block_size);
    if (shape.kv_type != DType::F16 && shape.kv_type != DType::Q8_0)
        fail("attention: keys and values in {} are not supported (F32, F16 or Q8_0)", info.name);
    if (shape.kv_position_stride != 0 || shape.head_dim % block != 0 || shape.kv_head_stride % block != 0)
        fail("attention: {} keys and values must be laid out as a cache of whole {}-element blocks (head_dim {}, "
             "kv head stride {}, position stride {})", info.name, block, shape.head_dim, shape.kv_head_stride,
             shape.kv_position_stride);
}

// Keys and values of a KV cache kept in F16 or Q8_0 read back to fp32, positions [0, past + tokens)
// of every kv head, into keys and values (laid out as a cache of that many positions); returns the
// shape that reads them. The sgemm path reads each key many times, so it reads them widened once.
AttentionShape widen_kv(float* keys, float* values, const void* k, const void* v, const AttentionShape& shape) {
    const std::int64_t positions = shape.past + shape.tokens, head_dim = shape.head_dim;
    const std::int64_t chunks = (positions + widen_positions - 1) / widen_positions;
    thread_pool().parallel_for(2 * shape.kv_heads * chunks, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
            const bool is_values = item % 2 == 1;
            const std::int64_t g = item / 2 / chunks, first = item / 2 % chunks * widen_positions;
            const std::int64_t count = std::min(widen_positions, positions - first);
            const std::int64_t element = g * shape.kv_head_stride + first * head_dim;
            const auto* stored = static_cast<const std::uint8_t*>(is_values ? v : k) +
                                 row_bytes(shape.kv_type, static_cast<std::uint64_t>(element));
            dequantize_row(shape.kv_type, stored, (is_values ? values : keys) + (g * positions + first) * head_dim,
                           count * head_dim);
        }
    });
    AttentionShape widened = shape;
    widened.kv_type = DType::F32;
    widened.kv_head_stride = positions * head_dim;
    return widened;
}

}  // namespace

void attention_forward(float* out, const float* q, const void* k, const void* v, const AttentionShape& shape) {
    check_heads(shape);
    check_kv_layout(shape);
    const VisibleKeys visible = visible_keys(shape);
    if (shape.tokens < blas_min_tokens) {
        switch (shape.kv_type) {
            case DType::F16: attention_per_query<cpu::F16Row>(out, q, k, v, shape, visible); return;
            case DType::Q8_0: attention_per_query<cpu::Q8_0Row>(out, q, k, v, shape, visible); return;
            default: attention_per_query<cpu::F32Row>(out, q, k, v, shape, visible); return;
        }
    }
    if (shape.kv_type == DType::F32) {
        attention_blocked(out, nullptr, q, static_cast<const float*>(k), static_cast<const float*>(v), shape, visible);
        return;
    }
    const std::int64_t floats = shape.kv_heads * (shape.past + shape.tokens) * shape.head_dim;
    thread_local std::vector<float> widened;
    if (widened.size() < static_cast<std::size_t>(2 * floats)) widened.resize(static_cast<std::size_t>(2 * floats));
    const AttentionShape read_back = widen_kv(widened.data(), widened.data() + floats, k, v, shape);
    attention_blocked(out, nullptr, q, widened.data(), widened.data() + floats, read_back, visible);
}

std::int64_t attention_probability_floats(const AttentionShape& shape) {
    std::int64_t floats = 0;
    if (bf16_operands(shape)) {
        // Blocks start at documents: a query's block stores at most past + min(t + query_block,
        // tokens) floats of its row (query_blocks), whatever the documents.
        for (std::int64_t t = 0; t < shape.tokens; ++t) floats += shape.past + std::min(t + query_block, shape.tokens);
    } else {
        for (std::int64_t t0 = 0; t0 < shape.tokens; t0 += query_block) {
            const std::int64_t rows = std::min(query_block, shape.tokens - t0);
            floats += rows * (shape.past + t0 + rows);
        }
    }
    return shape.heads * floats;
}

void attention_forward_saving(float* out, float* probabilities, const float* q, const float* k, const float* v,
                              const AttentionShape& shape) {
    check_heads(shape);
    require_f32_kv(shape, "the saving forward");
    attention_blocked(out, probabilities, q, k, v, shape, visible_keys(shape));
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const AttentionShape& shape) {
    attention_backward_saved(dq, dk, dv, dout, nullptr, q, k, v, shape);
}

// probabilities null: attention_backward (recomputes them).
void attention_backward_saved(float* dq, float* dk, float* dv, const float* dout, const float* probabilities,
                              const float* q, const float* k, const float* v, const AttentionShape& shape) {
    check_heads(shape);
    require_f32_kv(shape, "the backward");
    if (shape.tokens <= 0) return;
    const VisibleKeys visible = visible_keys(shape);
    const bool bf16 = bf16_operands(shape);
    const QueryBlocks blocks = query_blocks(shape, visible, bf16);
    const std::int64_t head_dim = shape.head_dim, positions = shape.past + shape.tokens, step = kv_step(shape);
    const std::int64_t items = work_items(shape, blocks, bf16);
    const std::int64_t kv_floats = shape.kv_heads * positions * head_dim;  // one thread's dk (or dv)
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
        for (std::int64_t item = thread; item < items; item += threads)
            for_each_head(item, blocks, bf16, k, v, shape, false, probabilities == nullptr,
                          [&](const QueryBlock& block, std::int64_t h, const PackedKv* packed) {
                              const float* saved =
                                  probabilities != nullptr ? probabilities + h * blocks.per_head + block.offset : nullptr;
                              attention_backward_block(dq, dk_partial, dv_partial, dout, saved, q, k, v, shape, visible,
                                                       block, h, packed);
                          });
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
