// kernels/cpu/gemm_f32_avx2.cpp — cpu::sgemm's AVX2+FMA variant (gemm_f32_kernel.h), compiled with
// -mavx2 -mfma whatever the build's -march (src/kernels/CMakeLists.txt); run only where
// core/cpu_isa reports both. Tiles of 6 x 16: twelve ymm accumulators, two for a row of B and one
// broadcast of A, fifteen of the sixteen registers. A kc = 256 panel of B is 16 KiB (half of L1),
// an mc = 144 block of A 144 KiB (L2 is 512 KiB or more on every AVX2 CPU since Zen 1).
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/gemm_f32_kernel.h"

namespace kindred::kernels::cpu::gemm {
namespace {

struct Avx2 {
    using Reg = __m256;
    static constexpr int width = 8, mr = 6, nv = 2;
    static constexpr std::int64_t mc = 144, kc = 256, nc = 4096;
    static Reg zero() { return _mm256_setzero_ps(); }
    static Reg load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
    static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static Reg set1(float x) { return _mm256_set1_ps(x); }
    static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
    static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
};

}  // namespace

const Variant avx2 = {"Kindred AVX2+FMA 6x16", Blocked<Avx2>::pack_a_floats, Blocked<Avx2>::pack_b_floats,
                      &Blocked<Avx2>::run};

}  // namespace kindred::kernels::cpu::gemm
#endif
