// kernels/cpu/gemm_f32.h — the fp32 matrix product every CPU kernel calls (internal to kernels/cpu),
// with cblas_sgemm's row-major meaning: C[m x n] = alpha · op(A) · op(B) + beta · C, where op(A)
// is [m x k] and op(B) is [k x n]; beta = 0 overwrites C without reading it. One call runs on the
// calling thread: kernels split work over core/thread_pool and call sgemm once per thread.
//
// Which code runs is chosen once, from core/cpu_isa's instruction sets and nothing else about the
// CPU. OpenBLAS picks its kernels from a table of CPU models, which lags new CPUs: on one it did
// not know it ran its generic Prescott (SSE3) kernels at a fifth of the speed (bench/README.md).
// So OpenBLAS runs only where the core it picked uses the CPU's widest vectors (Haswell or Zen on
// an AVX2 CPU, SkylakeX, Cooperlake or SapphireRapids on an AVX-512 one; its tuned kernels there
// are 5-20% faster than ours on large products, bench/gemm), and otherwise Kindred's own blocked
// GEMM runs (Goto's loop nest: panels of B packed to stay in L1, blocks of A packed in L2, a
// register-tiled micro-kernel of broadcast-FMAs), compiled for AVX-512 (12 x 32 tiles) or
// AVX2+FMA (6 x 16 tiles), each translation unit built for its instruction set whatever the
// build's -march. A CPU with neither runs OpenBLAS, whose table knows the older CPUs.
// KINDRED_GEMM=openblas|avx2|avx512 in the environment forces a path (for comparisons; a path the
// CPU cannot run is an Error).
//
// Kindred's kernels split the sum into slices by depth only (a function of k and the variant), and
// every element of C is summed in the same order whatever m, n, the slice of C a thread owns or
// its place in a tile: splitting a product along m or n over threads gives identical bits.
#pragma once

#include <cstdint>
#include <string_view>

namespace kindred {
struct CpuIsa;  // core/cpu_isa.h (not included: gemm_f32_kernel.h includes this header)
}

namespace kindred::kernels::cpu {

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
           std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

// What sgemm runs on this CPU: "Kindred AVX2+FMA 6x16" or "OpenBLAS".
const char* sgemm_path();

// The name OpenBLAS gives the kernels it chose ("Zen", "Haswell", "Prescott").
const char* openblas_core();

namespace gemm {

// One product as sgemm receives it.
struct Problem {
    bool trans_a, trans_b;
    std::int64_t m, n, k;
    float alpha;
    const float* a;
    std::int64_t lda;
    const float* b;
    std::int64_t ldb;
    float beta;
    float* c;
    std::int64_t ldc;
};

// Kindred's GEMM compiled for one instruction set. `run` needs packing
// space of pack_a_floats and pack_b_floats, 64-byte aligned.
struct Variant {
    const char* name;  // "Kindred AVX2+FMA 6x16"
    std::int64_t pack_a_floats;
    std::int64_t pack_b_floats;
    void (*run)(const Problem& problem, float* pack_a, float* pack_b);
};

// The choice above, for a CPU and the core OpenBLAS reports (openblas_core()).
enum class Choice { OpenBlas, Avx2, Avx512 };
Choice choose(const CpuIsa& isa, std::string_view openblas_core);

#if defined(__x86_64__)
extern const Variant avx2;    // gemm_f32_avx2.cpp
extern const Variant avx512;  // gemm_f32_avx512.cpp
#endif

// Runs `problem` on `variant` with the calling thread's packing buffers (tests call each variant
// the CPU supports against the others).
void run(const Variant& variant, const Problem& problem);

}  // namespace gemm
}  // namespace kindred::kernels::cpu
