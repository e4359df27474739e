// kernels/cpu/gemm_f32_kernel.h — the blocked fp32 GEMM behind cpu::sgemm (gemm_f32.h), written
// once over a vector type V and included by one translation unit per instruction set, each
// compiled for it (gemm_f32_avx2.cpp, gemm_f32_avx512.cpp). Everything here has internal linkage
// (an unnamed namespace) and uses no standard-library templates: an inline function compiled with
// AVX-512 enabled must never become the one definition that code on an AVX2 CPU links to.
//
// V provides: Reg, width (floats per Reg), mr (tile rows), nv (Regs per tile row, so a tile is
// mr x nv·width), mc, kc, nc (block sizes), zero, load, store, broadcast, fma, mul, set1.
//
// The loop nest (Goto and van de Geijn; BLIS's five loops): for each nc-wide slab of B and
// kc-deep slice of the sum, op(B)'s slice is packed into nr-wide panels [kc x nr] (one stays in
// L1 while the tiles below it use it); for each mc-high block of A, op(A)'s slice is packed into
// mr-high panels [kc x mr] (the block stays in L2); then every mr x nr tile of C gets kc
// broadcast-FMA steps in registers and is added to C. Blocks split m and k evenly, so a 576-deep
// sum runs as 3 x 192 rather than 256 + 256 + 64.
#pragma once

#include <cstdint>

#include "kernels/cpu/gemm_f32.h"

namespace kindred::kernels::cpu::gemm {
namespace {

constexpr std::int64_t smaller(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

template <class V>
struct Blocked {
    static constexpr std::int64_t mr = V::mr;
    static constexpr std::int64_t nr = V::nv * V::width;
    static_assert(V::mc % V::mr == 0 && V::nc % nr == 0);
    static constexpr std::int64_t pack_a_floats = V::mc * V::kc;
    static constexpr std::int64_t pack_b_floats = V::kc * V::nc;
    static constexpr std::int64_t narrow_n = 2 * nr;

    // Where op(A)[i][k] lies.
    static const float* a_at(const Problem& p, std::int64_t i, std::int64_t k) {
        return p.trans_a ? p.a + k * p.lda + i : p.a + i * p.lda + k;
    }

    // Packs `count` lines of a matrix, depth elements each, into panels of `width` lines: panel
    // element (k, i) at dst[k · width + i] is src[i · line_step + k · depth_step], for i past
    // `count` 0. Panels follow each other in dst, width · depth floats apart. Reads run along
    // whichever of the two steps is 1.
    template <std::int64_t width>
    static void pack(float* dst, const float* src, std::int64_t line_step, std::int64_t depth_step,
                     std::int64_t count, std::int64_t depth) {
        for (std::int64_t first = 0; first < count; first += width, dst += width * depth) {
            const std::int64_t lines = smaller(width, count - first);
            const float* panel = src + first * line_step;
            if (depth_step == 1) {
                for (std::int64_t i = 0; i < lines; ++i)
                    for (std::int64_t k = 0; k < depth; ++k) dst[k * width + i] = panel[i * line_step + k];
            } else {
                for (std::int64_t k = 0; k < depth; ++k)
                    for (std::int64_t i = 0; i < lines; ++i) dst[k * width + i] = panel[i * line_step + k * depth_step];
            }
            for (std::int64_t k = 0; k < depth && lines < width; ++k)
                for (std::int64_t i = lines; i < width; ++i) dst[k * width + i] = 0.0f;
        }
    }

    // op(A)[i0 .. i0 + rows) x [k0 .. k0 + depth) into mr-high panels.
    static void pack_a(float* dst, const Problem& p, std::int64_t i0, std::int64_t rows, std::int64_t k0,
                       std::int64_t depth) {
        pack<mr>(dst, a_at(p, i0, k0), p.trans_a ? 1 : p.lda, p.trans_a ? p.lda : 1, rows, depth);
    }

    // op(B)[k0 .. k0 + depth) x [j0 .. j0 + cols) into nr-wide panels.
    static void pack_b(float* dst, const Problem& p, std::int64_t k0, std::int64_t depth, std::int64_t j0,
                       std::int64_t cols) {
        const float* first = p.trans_b ? p.b + j0 * p.ldb + k0 : p.b + k0 * p.ldb + j0;
        pack<nr>(dst, first, p.trans_b ? p.ldb : 1, p.trans_b ? 1 : p.ldb, cols, depth);
    }

    // C tile [rows x cols] (at most mr x nr) = alpha · A · b_panel + beta · C, where A's element
    // (i, k) is a[i · row_step + k · depth_step]: a packed panel (steps 1 and mr) or op(A) in place.
    // beta = 0 does not read C.
    static void tile(std::int64_t depth, const float* a, std::int64_t row_step, std::int64_t depth_step,
                     const float* b, float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, float alpha,
                     float beta) {
        using Reg = typename V::Reg;
        constexpr int w = V::width;
        Reg acc[V::mr][V::nv];
#pragma GCC unroll 32
        for (int i = 0; i < V::mr; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < V::nv; ++j) acc[i][j] = V::zero();
#pragma GCC unroll 2
        for (std::int64_t k = 0; k < depth; ++k, a += depth_step, b += nr) {
            Reg bk[V::nv];
#pragma GCC unroll 4
            for (int j = 0; j < V::nv; ++j) bk[j] = V::load(b + j * w);
#pragma GCC unroll 32
            for (int i = 0; i < V::mr; ++i) {
                const Reg ai = V::broadcast(a + i * row_step);
#pragma GCC unroll 4
                for (int j = 0; j < V::nv; ++j) acc[i][j] = V::fma(ai, bk[j], acc[i][j]);
            }
        }
        const Reg va = V::set1(alpha), vb = V::set1(beta);
        if (rows == mr && cols == nr) {
#pragma GCC unroll 32
            for (int i = 0; i < V::mr; ++i)
#pragma GCC unroll 4
                for (int j = 0; j < V::nv; ++j) {
                    float* out = c + i * ldc + j * w;
                    V::store(out, beta == 0.0f ? V::mul(va, acc[i][j]) : V::fma(vb, V::load(out), V::mul(va, acc[i][j])));
                }
            return;
        }
        alignas(64) float partial[V::mr * nr];
#pragma GCC unroll 32
        for (int i = 0; i < V::mr; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < V::nv; ++j) V::store(partial + i * nr + j * w, acc[i][j]);
        for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t j = 0; j < cols; ++j) {
                float& out = c[i * ldc + j];
                out = beta == 0.0f ? alpha * partial[i * nr + j] : alpha * partial[i * nr + j] + beta * out;
            }
    }

    static void run(const Problem& p, float* a_space, float* b_space) {
        if (p.m <= 0 || p.n <= 0) return;
        if (p.k <= 0 || p.alpha == 0.0f) {  // C = beta · C
            for (std::int64_t i = 0; i < p.m; ++i)
                for (std::int64_t j = 0; j < p.n; ++j) {
                    float& out = p.c[i * p.ldc + j];
                    out = p.beta == 0.0f ? 0.0f : p.beta * out;
                }
            return;
        }
        // A narrow product reuses each block of A for few panels of B: packing it would cost as
        // much as the arithmetic, so tiles read op(A) where it lies.
        const bool pack = p.n > narrow_n;
        const std::int64_t a_row_step = p.trans_a ? 1 : p.lda, a_depth_step = p.trans_a ? p.lda : 1;
        const std::int64_t kc = ceil_div(p.k, ceil_div(p.k, V::kc));
        const std::int64_t mc = ceil_div(ceil_div(p.m, ceil_div(p.m, V::mc)), mr) * mr;
        for (std::int64_t jc = 0; jc < p.n; jc += V::nc) {
            const std::int64_t nc = smaller(V::nc, p.n - jc);
            for (std::int64_t pc = 0; pc < p.k; pc += kc) {
                const std::int64_t depth = smaller(kc, p.k - pc);
                pack_b(b_space, p, pc, depth, jc, nc);
                // Later slices of the sum add to what the first one wrote.
                const float beta = pc == 0 ? p.beta : 1.0f;
                for (std::int64_t ic = 0; ic < p.m; ic += mc) {
                    const std::int64_t rows = smaller(mc, p.m - ic);
                    if (pack) pack_a(a_space, p, ic, rows, pc, depth);
                    for (std::int64_t jr = 0; jr < nc; jr += nr)
                        for (std::int64_t ir = 0; ir < rows; ir += mr) {
                            const std::int64_t r = smaller(mr, rows - ir);
                            float* c = p.c + (ic + ir) * p.ldc + jc + jr;
                            const float* b_panel = b_space + jr * depth;
                            const std::int64_t cols = smaller(nr, nc - jr);
                            if (pack) {
                                tile(depth, a_space + ir * depth, 1, mr, b_panel, c, p.ldc, r, cols, p.alpha, beta);
                            } else if (r == mr) {
                                tile(depth, a_at(p, ic + ir, pc), a_row_step, a_depth_step, b_panel, c, p.ldc, r, cols,
                                     p.alpha, beta);
                            } else {  // op(A)'s last rows: a padded panel, so that no row past m is read
                                pack_a(a_space, p, ic + ir, r, pc, depth);
                                tile(depth, a_space, 1, mr, b_panel, c, p.ldc, r, cols, p.alpha, beta);
                            }
                        }
                }
            }
        }
    }
};

}  // namespace
}  // namespace kindred::kernels::cpu::gemm
