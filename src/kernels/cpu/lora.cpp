// kernels/cpu/lora.cpp — LoRA forward/backward, PEFT init and input dropout on the CPU.
// Every product is a one-threaded sgemm over a slice the thread pool hands out; slices are cut
// along an output dimension (tokens, rows of dB, columns of dA), never along a sum, so each output
// element is computed by one thread in one order: results are repeatable for a fixed thread count.
// Another thread count cuts other slice shapes: Kindred's GEMM sums each element in the same order
// whatever the shape (gemm_f32.h), the OpenBLAS fallback may pick other micro-kernels for them
// (last-bit differences, measured with OpenBLAS: 1 vs 2 threads identical, 1 vs 3 not).
// In bf16 (LoraShape::precision) the same slices multiply on AMX tiles (kernels/cpu/bf16_gemm.h),
// each thread rounding or packing its slice of the large operands (u, dy) in chunks, the small
// ones (A, B, xa, dxa) rounded or packed once by the calling thread; AMX sums each element in the
// same order whatever the slices, so bf16 results do not depend on the thread count.
#include "kernels/lora.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/matmul_bf16.h"
#include "kernels/cpu/scratch.h"

namespace kindred::kernels {
namespace {

// Rows (or columns) per slice: enough to amortise sgemm's packing.
constexpr std::int64_t grain = 16;

std::uint64_t splitmix64(std::uint64_t seed, std::uint64_t index) {
    std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void check_shape(const LoraShape& s) {
    if (s.tokens < 0 || s.in <= 0 || s.out <= 0 || s.rank <= 0)
        fail("lora: bad shape tokens={} in={} out={} rank={}", s.tokens, s.in, s.out, s.rank);
}

void check_dropout(float p) {
    if (!(p >= 0.0f && p < 1.0f)) fail("dropout: probability {} is outside [0, 1)", p);
}

namespace bf16 = cpu::bf16;

bool bf16_products(const LoraShape& s) { return effective_precision(s.precision) == Precision::BF16; }

// Rows of u or dy (or rows of dB, columns of dA) per bf16 chunk: a thread's rounded or packed
// slice of the large operands stays within ~256 KiB (64 x 2048 bf16).
constexpr std::int64_t bf16_chunk = 64;

// A thread's bf16 operands: A's rows (or columns) and a packed B; and the calling thread's rounded
// input (or dy) and bf16(scale · xa) (or bf16(dxa)) rows, read by every thread.
enum class Bf16Scratch { A, B, Input, ScaledXa };

// The calling thread's buffers for the operands it prepares once per call, which every thread
// then reads: packings of A and B, and xa or dxa transposed.
enum class Shared { PackedA, PackedB, Transposed, Count };

std::uint16_t* shared_bf16(Shared kind, std::int64_t n) {
    thread_local GrowingBuffer<std::uint16_t> buffers[static_cast<int>(Shared::Count)];
    return buffers[static_cast<int>(kind)].at_least(n);
}

// scale · x (n floats) in the calling thread's buffer, to be rounded: the scale folded in.
const float* scaled(const float* x, std::int64_t n, float scale) {
    thread_local GrowingBuffer<float> buffer;
    float* out = buffer.at_least(n);
    for (std::int64_t i = 0; i < n; ++i) out[i] = scale * x[i];
    return out;
}

// p = bf16(v) · P [tokens x rank] for v [tokens x k] and P packed [k x rank], by slices of
// tokens: from v16 (v's rounded rows, row stride round_up(k, 32)) when given, else rounding v
// chunk by chunk; with rounded_p, bf16(scale · p)'s rows too (row stride round_up(rank, 32)).
// xa (from u and A) and dxa (from dy and scale · B) are such products.
void rank_product_bf16(float* p, std::uint16_t* rounded_p, float scale, const float* v, const std::uint16_t* v16,
                       std::int64_t k, const std::uint16_t* packed, const LoraShape& s) {
    const std::int64_t ldv = bf16::round_up(k, bf16::block_k), ldr = bf16::round_up(s.rank, bf16::block_k);
    thread_pool().parallel_for(s.tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t c0 = t0; c0 < t1; c0 += bf16_chunk) {
            const std::int64_t rows = std::min(bf16_chunk, t1 - c0);
            const std::uint16_t* rows16 = v16 != nullptr ? v16 + c0 * ldv : nullptr;
            if (rows16 == nullptr) {
                std::uint16_t* own = cpu::thread_scratch<std::uint16_t, Bf16Scratch::A>(rows * ldv);
                bf16::round_rows(own, ldv, v + c0 * k, k, rows, k);
                rows16 = own;
            }
            bf16::gemm(p + c0 * s.rank, s.rank, rows16, ldv, packed, rows, s.rank, k, false);
            if (rounded_p != nullptr)
                bf16::round_rows(rounded_p + c0 * ldr, ldr, p + c0 * s.rank, s.rank, rows, s.rank, scale);
        }
    });
}

// xa = bf16(u) · bf16(A)ᵀ and its bf16(scale · xa) rows into scaled_xa (rank_product_bf16, u16
// as its v16): the A of y's adapter term. Returns bf16(B) packed as that term's B, in the calling
// thread's buffer.
const std::uint16_t* lora_xa_bf16(float* xa, std::uint16_t* scaled_xa, const float* u, const std::uint16_t* u16,
                                  const float* a, const float* b, const LoraShape& s) {
    std::uint16_t* a_t = shared_bf16(Shared::PackedA, bf16::packed_elements(s.in, s.rank));
    bf16::pack_transposed(a_t, a, s.in, s.rank, s.in);
    std::uint16_t* b_t = shared_bf16(Shared::PackedB, bf16::packed_elements(s.rank, s.out));
    bf16::pack_transposed(b_t, b, s.rank, s.out, s.rank);
    rank_product_bf16(xa, scaled_xa, s.scale, u, u16, s.in, a_t, s);
    return b_t;
}

// y += bf16(scale · xa) · bf16(B)ᵀ, by slices of tokens.
void lora_forward_bf16(float* y, float* xa, const float* u, const float* a, const float* b, const LoraShape& s) {
    const std::int64_t ldr = bf16::round_up(s.rank, bf16::block_k);
    std::uint16_t* scaled_xa = cpu::thread_scratch<std::uint16_t, Bf16Scratch::ScaledXa>(s.tokens * ldr);
    const std::uint16_t* b_t = lora_xa_bf16(xa, scaled_xa, u, nullptr, a, b, s);
    thread_pool().parallel_for(s.tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
        bf16::gemm(y + t0 * s.out, s.out, scaled_xa + t0 * ldr, ldr, b_t, t1 - t0, s.out, s.rank, true);
    });
}

// db += bf16(scale · xa)ᵀ · bf16(dy), by slices of dB's rows (dy's columns): packing dy's
// columns reads its rows in order, where rounding dyᵀ's rows would scatter its stores.
void lora_db_bf16(float* db, const float* dy, const float* xa, const LoraShape& s) {
    const std::int64_t ldt = bf16::round_up(s.tokens, bf16::block_k);
    std::uint16_t* xa_t = shared_bf16(Shared::Transposed, s.rank * ldt);
    bf16::round_columns(xa_t, ldt, scaled(xa, s.tokens * s.rank, s.scale), s.rank, s.tokens, s.rank);
    thread_pool().parallel_for(s.out, grain, [&](std::int64_t r0, std::int64_t r1) {
        thread_local GrowingBuffer<float> products;
        float* const product = products.at_least(s.rank * bf16_chunk);
        for (std::int64_t c0 = r0; c0 < r1; c0 += bf16_chunk) {
            const std::int64_t n = std::min(bf16_chunk, r1 - c0);
            std::uint16_t* dy_p = cpu::thread_scratch<std::uint16_t, Bf16Scratch::B>(bf16::packed_elements(s.tokens, n));
            bf16::pack(dy_p, dy + c0, s.out, s.tokens, n);
            bf16::gemm(product, n, xa_t, ldt, dy_p, s.rank, n, s.tokens, false);
            for (std::int64_t j = 0; j < n; ++j)
                for (std::int64_t r = 0; r < s.rank; ++r) db[(c0 + j) * s.rank + r] += product[r * n + j];
        }
    });
}

// da += bf16(dxa)ᵀ · bf16(u), by slices of dA's columns (u's).
void lora_da_bf16(float* da, const float* dxa, const float* u, const LoraShape& s) {
    const std::int64_t ldt = bf16::round_up(s.tokens, bf16::block_k);
    std::uint16_t* dxa_t = shared_bf16(Shared::Transposed, s.rank * ldt);
    bf16::round_columns(dxa_t, ldt, dxa, s.rank, s.tokens, s.rank);
    thread_pool().parallel_for(s.in, grain, [&](std::int64_t col0, std::int64_t col1) {
        for (std::int64_t c0 = col0; c0 < col1; c0 += bf16_chunk) {
            const std::int64_t n = std::min(bf16_chunk, col1 - c0);
            std::uint16_t* u_p = cpu::thread_scratch<std::uint16_t, Bf16Scratch::B>(bf16::packed_elements(s.tokens, n));
            bf16::pack(u_p, u + c0, s.in, s.tokens, n);
            bf16::gemm(da + c0, s.in, dxa_t, ldt, u_p, s.rank, n, s.tokens, true);
        }
    });
}

// bf16(A) packed as the B of du = bf16(dxa) · bf16(A), in the calling thread's buffer.
const std::uint16_t* packed_a(const float* a, const LoraShape& s) {
    std::uint16_t* a_p = shared_bf16(Shared::PackedA, bf16::packed_elements(s.rank, s.in));
    bf16::pack(a_p, a, s.in, s.rank, s.in);
    return a_p;
}

// dxa = bf16(dy) · bf16(scale · B) [tokens x rank] in the calling thread's buffer, and with
// rounded_dxa its bf16 rows (rank_product_bf16, dy16 as its v16).
const float* lora_dxa_bf16(const float* dy, const std::uint16_t* dy16, const float* b, std::uint16_t* rounded_dxa,
                           const LoraShape& s) {
    std::uint16_t* b_p = shared_bf16(Shared::PackedB, bf16::packed_elements(s.out, s.rank));
    bf16::pack(b_p, scaled(b, s.out * s.rank, s.scale), s.rank, s.out, s.rank);
    thread_local GrowingBuffer<float> dxa_buffer;
    float* const dxa = dxa_buffer.at_least(s.tokens * s.rank);
    rank_product_bf16(dxa, rounded_dxa, 1.0f, dy, dy16, s.out, b_p, s);
    return dxa;
}

void lora_backward_bf16(float* du, float* da, float* db, const float* dy, const float* u, const float* xa,
                        const float* a, const float* b, const LoraShape& s) {
    if (db != nullptr) lora_db_bf16(db, dy, xa, s);
    if (da == nullptr && du == nullptr) return;
    // du += bf16(dxa) · bf16(A), by slices of tokens.
    const std::int64_t ldr = bf16::round_up(s.rank, bf16::block_k);
    std::uint16_t* dxa16 = du != nullptr ? cpu::thread_scratch<std::uint16_t, Bf16Scratch::ScaledXa>(s.tokens * ldr) : nullptr;
    const float* dxa = lora_dxa_bf16(dy, nullptr, b, dxa16, s);
    if (du != nullptr) {
        const std::uint16_t* a_p = packed_a(a, s);
        thread_pool().parallel_for(s.tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
            bf16::gemm(du + t0 * s.in, s.in, dxa16 + t0 * ldr, ldr, a_p, t1 - t0, s.in, s.rank, true);
        });
    }
    if (da != nullptr) lora_da_bf16(da, dxa, u, s);
}

}  // namespace

float lora_scale(float alpha, std::int64_t rank, bool rslora) {
    if (rank <= 0) fail("lora_scale: rank {} is not positive", rank);
    const double r = static_cast<double>(rank);
    return static_cast<float>(alpha / (rslora ? std::sqrt(r) : r));
}

float counter_uniform(std::uint64_t seed, std::uint64_t index) {
    return static_cast<float>(splitmix64(seed, index) >> 40) * 0x1.0p-24f;
}

void lora_init(float* a, float* b, std::int64_t rank, std::int64_t in, std::int64_t out, std::uint64_t seed) {
    if (rank <= 0 || in <= 0 || out <= 0) fail("lora_init: bad shape rank={} in={} out={}", rank, in, out);
    const auto bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(in)));
    for (std::int64_t i = 0; i < rank * in; ++i)
        a[i] = bound * (2.0f * counter_uniform(seed, static_cast<std::uint64_t>(i)) - 1.0f);
    for (std::int64_t i = 0; i < out * rank; ++i) b[i] = 0.0f;
}

void dropout_forward(float* out, std::uint8_t* keep, const float* x, std::int64_t n, float p, std::uint64_t seed,
                     std::uint64_t offset) {
    check_dropout(p);
    const float kept_scale = 1.0f / (1.0f - p);
    for (std::int64_t i = 0; i < n; ++i) {
        const bool kept = counter_uniform(seed, offset + static_cast<std::uint64_t>(i)) >= p;
        keep[i] = kept ? 1 : 0;
        out[i] = kept ? x[i] * kept_scale : 0.0f;
    }
}

void dropout_backward(float* dx, const float* dout, const std::uint8_t* keep, std::int64_t n, float p) {
    check_dropout(p);
    const float kept_scale = 1.0f / (1.0f - p);
    for (std::int64_t i = 0; i < n; ++i)
        if (keep[i] != 0) dx[i] += dout[i] * kept_scale;
}

void lora_forward(float* y, float* xa, const float* u, const float* a, const float* b, const LoraShape& s) {
    check_shape(s);
    if (bf16_products(s)) return lora_forward_bf16(y, xa, u, a, b, s);
    thread_pool().parallel_for(s.tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
        cpu::sgemm(false, true, t1 - t0, s.rank, s.in, 1.0f, u + t0 * s.in, s.in, a, s.in, 0.0f, xa + t0 * s.rank,
                   s.rank);
        cpu::sgemm(false, true, t1 - t0, s.out, s.rank, s.scale, xa + t0 * s.rank, s.rank, b, s.rank, 1.0f,
                   y + t0 * s.out, s.out);
    });
}

void linear_with_lora_forward(float* y, float* xa, const float* x, const float* u, const Matrix& w, const float* bias,
                              const float* a, const float* b, const LoraShape& s) {
    check_shape(s);
    if (w.rows != s.out || w.cols != s.in)
        fail("linear_with_lora_forward: the weight is {} x {}, the adapter maps {} -> {}", w.rows, w.cols, s.in, s.out);
    // matmul_forward multiplies fewer than 4 tokens in fp32 mat-vecs, and adds a bias after its
    // sums: both keep the two calls, whose bits the fused product must give.
    if (!bf16_products(s) || bias != nullptr || s.tokens < 4) {
        matmul_forward(y, x, w, bias, s.tokens, s.precision);
        lora_forward(y, xa, u, a, b, s);
        return;
    }
    const std::int64_t ldx = bf16::round_up(s.in, bf16::block_k), ldr = bf16::round_up(s.rank, bf16::block_k);
    std::uint16_t* x16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Input>(s.tokens * ldx);
    bf16::round_rows_parallel(x16, ldx, x, s.in, s.tokens, s.in);
    std::uint16_t* scaled_xa = cpu::thread_scratch<std::uint16_t, Bf16Scratch::ScaledXa>(s.tokens * ldr);
    const std::uint16_t* b_t = lora_xa_bf16(xa, scaled_xa, u, u == x ? x16 : nullptr, a, b, s);
    const bf16::SecondProduct adapter{scaled_xa, ldr, b_t, s.rank};
    cpu::bf16_matmul_forward(y, x16, w, s.tokens, &adapter);
}

void linear_with_lora_backward(float* dx, float* da, float* db, const float* dy, const float* x, const float* xa,
                               const Matrix& w, const float* a, const float* b, const LoraShape& s) {
    check_shape(s);
    if (w.rows != s.out || w.cols != s.in)
        fail("linear_with_lora_backward: the weight is {} x {}, the adapter maps {} -> {}", w.rows, w.cols, s.in, s.out);
    if (!bf16_products(s) || s.tokens == 0) {
        matmul_backward_input(dx, dy, w, s.tokens, s.precision);
        lora_backward(dx, da, db, dy, x, xa, a, b, s);
        return;
    }
    const std::int64_t ldy = bf16::round_up(s.out, bf16::block_k), ldr = bf16::round_up(s.rank, bf16::block_k);
    std::uint16_t* dy16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::Input>(s.tokens * ldy);
    bf16::round_rows_parallel(dy16, ldy, dy, s.out, s.tokens, s.out);
    if (db != nullptr) lora_db_bf16(db, dy, xa, s);
    std::uint16_t* dxa16 = cpu::thread_scratch<std::uint16_t, Bf16Scratch::ScaledXa>(s.tokens * ldr);
    const float* dxa = lora_dxa_bf16(dy, dy16, b, dxa16, s);
    const bf16::SecondProduct adapter{dxa16, ldr, packed_a(a, s), s.rank};
    cpu::bf16_matmul_backward_input(dx, dy16, w, s.tokens, &adapter);
    if (da != nullptr) lora_da_bf16(da, dxa, x, s);
}

void lora_backward(float* du, float* da, float* db, const float* dy, const float* u, const float* xa, const float* a,
                   const float* b, const LoraShape& s) {
    check_shape(s);
    if (s.tokens == 0) return;
    if (bf16_products(s)) return lora_backward_bf16(du, da, db, dy, u, xa, a, b, s);
    auto& pool = thread_pool();
    if (db != nullptr)
        pool.parallel_for(s.out, grain, [&](std::int64_t r0, std::int64_t r1) {
            cpu::sgemm(true, false, r1 - r0, s.rank, s.tokens, s.scale, dy + r0, s.out, xa, s.rank, 1.0f,
                       db + r0 * s.rank, s.rank);
        });
    if (da == nullptr && du == nullptr) return;
    // dxa = scale · dy · B, the gradient at the rank-r bottleneck.
    std::vector<float> dxa(static_cast<std::size_t>(s.tokens * s.rank));
    pool.parallel_for(s.tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
        cpu::sgemm(false, false, t1 - t0, s.rank, s.out, s.scale, dy + t0 * s.out, s.out, b, s.rank, 0.0f,
                   dxa.data() + t0 * s.rank, s.rank);
        if (du != nullptr)
            cpu::sgemm(false, false, t1 - t0, s.in, s.rank, 1.0f, dxa.data() + t0 * s.rank, s.rank, a, s.in, 1.0f,
                       du + t0 * s.in, s.in);
    });
    if (da != nullptr)
        pool.parallel_for(s.in, grain, [&](std::int64_t c0, std::int64_t c1) {
            cpu::sgemm(true, false, s.rank, c1 - c0, s.tokens, 1.0f, dxa.data(), s.rank, u + c0, s.in, 1.0f, da + c0,
                       s.in);
        });
}

}  // namespace kindred::kernels
