// kernels/cpu/gemm_f32_avx512.cpp — cpu::sgemm's AVX-512 variant (gemm_f32_kernel.h), compiled with
// -mavx512f -mavx512bw -mavx512vl -mfma whatever the build's -march (src/kernels/CMakeLists.txt);
// run only where core/cpu_isa reports AVX-512 F, BW and VL. Tiles of 12 x 32: 24 zmm accumulators
// and two for a row of B (A is broadcast from memory inside the FMA). A kc = 192 panel of B is
// 24 KiB (half of the 48 KiB L1 of Ice Lake and later), an mc = 240 block of A 180 KiB (L2 is
// 1 MiB or more on every AVX-512 CPU).
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/gemm_f32_kernel.h"

namespace kindred::kernels::cpu::gemm {
namespace {

struct Avx512 {
    using Reg = __m512;
    static constexpr int width = 16, mr = 12, nv = 2;
    static constexpr std::int64_t mc = 240, kc = 192, nc = 4096;
    static Reg zero() { return _mm512_setzero_ps(); }
    static Reg load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
    static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static Reg set1(float x) { return _mm512_set1_ps(x); }
    static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
    static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
};

}  // namespace

const Variant avx512 = {"Kindred AVX-512 12x32", Blocked<Avx512>::pack_a_floats, Blocked<Avx512>::pack_b_floats,
                        &Blocked<Avx512>::run};

}  // namespace kindred::kernels::cpu::gemm
#endif
