// Tests of cpu::sgemm (kernels/cpu/gemm_f32.h): every variant this CPU runs, and the dispatched
// path, against a double-precision reference on ragged shapes, all transpose combinations, strides
// wider than the matrices, and the alpha/beta cases cblas defines (beta = 0 never reads C).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/cpu_isa.h"
#include "kernel_test_util.h"
#include "kernels/cpu/gemm_f32.h"

namespace kindred::kernels::cpu {
namespace {

using kindred::testing::random_floats;

struct Shape {
    std::int64_t m, n, k;
};

// `product` computes the problem it is given (a variant, or the dispatched sgemm).
template <typename Product>
void expect_matches_reference(Product product, Shape s, bool trans_a, bool trans_b, float alpha, float beta) {
    SCOPED_TRACE(::testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k << (trans_a ? " Aᵀ" : " A")
                                      << (trans_b ? " Bᵀ" : " B") << " alpha=" << alpha << " beta=" << beta);
    // Strides wider than the stored rows, so that a kernel mixing up rows and columns shows.
    const std::int64_t lda = (trans_a ? s.m : s.k) + 3, ldb = (trans_b ? s.k : s.n) + 5, ldc = s.n + 2;
    const std::int64_t a_rows = trans_a ? s.k : s.m, b_rows = trans_b ? s.n : s.k;
    const auto a = random_floats(static_cast<std::size_t>(a_rows * lda), static_cast<std::uint32_t>(s.m + 3 * s.k));
    const auto b = random_floats(static_cast<std::size_t>(b_rows * ldb), static_cast<std::uint32_t>(s.n + 7 * s.k));
    const auto c0 = random_floats(static_cast<std::size_t>(s.m * ldc), static_cast<std::uint32_t>(s.m + s.n));
    auto at = [&](std::int64_t i, std::int64_t kk) { return trans_a ? a[kk * lda + i] : a[i * lda + kk]; };
    auto bt = [&](std::int64_t kk, std::int64_t j) { return trans_b ? b[j * ldb + kk] : b[kk * ldb + j]; };

    // beta = 0: C's old contents must not be read, so they are NaN.
    std::vector<float> c = c0;
    if (beta == 0.0f)
        for (std::int64_t i = 0; i < s.m; ++i)
            for (std::int64_t j = 0; j < s.n; ++j) c[i * ldc + j] = std::numeric_limits<float>::quiet_NaN();
    product(gemm::Problem{trans_a, trans_b, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc});

    int failures = 0;
    for (std::int64_t i = 0; i < s.m && failures < 5; ++i)
        for (std::int64_t j = 0; j < ldc && failures < 5; ++j) {
            const float got = c[i * ldc + j];
            if (j >= s.n) {
                ASSERT_EQ(got, c0[i * ldc + j]) << "column " << j << " past n was written";
                continue;
            }
            double sum = 0.0, magnitude = 0.0;
            for (std::int64_t kk = 0; kk < s.k; ++kk) {
                const double term = static_cast<double>(alpha) * at(i, kk) * bt(kk, j);
                sum += term;
                magnitude += std::abs(term);
            }
            const double old = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c0[i * ldc + j];
            // fp32 with FMAs: each of the k products is rounded at most once, inside its FMA, and
            // so is each partial sum; scaling by alpha and adding beta·C round twice more. So the
            // error is at most (k + 2)·2^-24 · (Σ|alpha·a·b| + |beta·c|) in any order of the sums.
            const double tolerance = kindred::testing::fp32_sum_bound(s.k + 2, magnitude + std::abs(old));
            if (!(std::abs(got - (sum + old)) <= tolerance)) {
                ADD_FAILURE() << "c[" << i << "][" << j << "] = " << got << ", expected " << sum + old << " +- "
                              << tolerance;
                ++failures;
            }
        }
}

template <typename Product>
void expect_all_cases(Product product) {
    // Edges of every block size: the tiles (6 x 16, 12 x 32), mc (144, 240), kc (256, 192) and a
    // k that splits unevenly; n past nc (4096) with a small m and k.
    const Shape shapes[] = {{1, 1, 1},     {5, 17, 31},   {6, 16, 256},  {7, 33, 257}, {13, 40, 600},
                            {150, 20, 97}, {250, 65, 48}, {2, 4200, 3},  {64, 64, 64}, {3, 7, 0}};
    for (const Shape& s : shapes)
        for (bool trans_a : {false, true})
            for (bool trans_b : {false, true}) {
                expect_matches_reference(product, s, trans_a, trans_b, 1.0f, 0.0f);
                expect_matches_reference(product, s, trans_a, trans_b, 0.75f, 1.0f);
                expect_matches_reference(product, s, trans_a, trans_b, -1.5f, -0.5f);
            }
    expect_matches_reference(product, {9, 18, 20}, false, true, 0.0f, 0.5f);  // alpha = 0: C = beta · C
}

#if defined(__x86_64__)
TEST(GemmF32, Avx2VariantMatchesTheReference) {
    if (!(cpu_isa().avx2 && cpu_isa().fma)) GTEST_SKIP() << "this CPU has no AVX2+FMA";
    expect_all_cases([](const gemm::Problem& p) { gemm::run(gemm::avx2, p); });
}

TEST(GemmF32, Avx512VariantMatchesTheReference) {
    if (!(cpu_isa().avx512() && cpu_isa().fma)) GTEST_SKIP() << "this CPU has no AVX-512 F/BW/VL";
    expect_all_cases([](const gemm::Problem& p) { gemm::run(gemm::avx512, p); });
}
#endif

TEST(GemmF32, DispatchedPathMatchesTheReference) {
    expect_all_cases([](const gemm::Problem& p) {
        sgemm(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, p.c, p.ldc);
    });
}

// OpenBLAS runs only where the core it picked uses the CPU's widest vectors; a CPU it does not
// know (its generic Prescott kernels, or AVX2 kernels on an AVX-512 CPU) gets Kindred's.
TEST(GemmF32, ChoosesOpenBlasOnlyWhereItsCoreUsesTheWidestVectors) {
    using gemm::Choice;
    CpuIsa avx2;
    avx2.avx2 = avx2.fma = true;
    CpuIsa avx512 = avx2;
    avx512.avx512f = avx512.avx512bw = avx512.avx512vl = true;
    EXPECT_EQ(gemm::choose(avx2, "Zen"), Choice::OpenBlas);
    EXPECT_EQ(gemm::choose(avx2, "Haswell"), Choice::OpenBlas);
    EXPECT_EQ(gemm::choose(avx2, "Prescott"), Choice::Avx2);
    EXPECT_EQ(gemm::choose(avx2, "Sandybridge"), Choice::Avx2);
    EXPECT_EQ(gemm::choose(avx2, "SomeFutureCore"), Choice::Avx2);
    EXPECT_EQ(gemm::choose(avx512, "SkylakeX"), Choice::OpenBlas);
    EXPECT_EQ(gemm::choose(avx512, "Cooperlake"), Choice::OpenBlas);
    EXPECT_EQ(gemm::choose(avx512, "Haswell"), Choice::Avx512);
    EXPECT_EQ(gemm::choose(avx512, "Prescott"), Choice::Avx512);
    EXPECT_EQ(gemm::choose(CpuIsa{}, "Prescott"), Choice::OpenBlas);  // no AVX2: nothing better to run
    CpuIsa avx512_without_fma = avx512;
    avx512_without_fma.fma = false;
    EXPECT_EQ(gemm::choose(avx512_without_fma, "Prescott"), Choice::OpenBlas);
}

// The dispatched path is that choice for this CPU and the core OpenBLAS loaded with
// (OPENBLAS_CORETYPE=Prescott in the environment shows the fallback on any AVX2 machine).
TEST(GemmF32, RunsTheChoiceForThisCpu) {
    if (std::getenv("KINDRED_GEMM") != nullptr) GTEST_SKIP() << "KINDRED_GEMM forces the path";
    const std::string path = sgemm_path();
    switch (gemm::choose(cpu_isa(), openblas_core())) {
#if defined(__x86_64__)
        case gemm::Choice::Avx512: EXPECT_EQ(path, gemm::avx512.name); break;
        case gemm::Choice::Avx2: EXPECT_EQ(path, gemm::avx2.name); break;
#endif
        default: EXPECT_EQ(path, "OpenBLAS"); break;
    }
}

}  // namespace
}  // namespace kindred::kernels::cpu
