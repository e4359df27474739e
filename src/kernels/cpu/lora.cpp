// kernels/cpu/lora.cpp — LoRA forward/backward, PEFT init and input dropout on the CPU.
// Every product is a one-threaded sgemm over a slice the thread pool hands out; slices are cut
// along an output dimension (tokens, rows of dB, columns of dA), never along a sum, so each output
// element is computed by one thread in one order: results are repeatable for a fixed thread count.
// Another thread count cuts other slice shapes: Kindred's GEMM sums each element in the same order
// whatever the shape (gemm_f32.h), the OpenBLAS fallback may pick other micro-kernels for them
// (last-bit differences, measured with OpenBLAS: 1 vs 2 threads identical, 1 vs 3 not).
#include "kernels/lora.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm_f32.h"

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
    thread_pool().parallel_for(s.tokens, grain, [&](std::int64_t t0, std::int64_t t1) {
        cpu::sgemm(false, true, t1 - t0, s.rank, s.in, 1.0f, u + t0 * s.in, s.in, a, s.in, 0.0f, xa + t0 * s.rank,
                   s.rank);
        cpu::sgemm(false, true, t1 - t0, s.out, s.rank, s.scale, xa + t0 * s.rank, s.rank, b, s.rank, 1.0f,
                   y + t0 * s.out, s.out);
    });
}

void lora_backward(float* du, float* da, float* db, const float* dy, const float* u, const float* xa, const float* a,
                   const float* b, const LoraShape& s) {
    check_shape(s);
    if (s.tokens == 0) return;
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
