// kernels/cpu/gemm_f32.cpp — cpu::sgemm's choice of code and its packing buffers (see gemm_f32.h).
#include "kernels/cpu/gemm_f32.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>

#include <cblas.h>

#include "core/aligned.h"
#include "core/cpu_isa.h"
#include "core/error.h"

namespace kindred::kernels::cpu {
namespace {

// The best variant this CPU runs, or null for OpenBLAS; KINDRED_GEMM overrides (gemm_f32.h).
const gemm::Variant* choose_variant() {
    const CpuIsa& isa = cpu_isa();
    const char* forced = std::getenv("KINDRED_GEMM");
    if (forced != nullptr && *forced != '\0') {
        if (std::strcmp(forced, "openblas") == 0) return nullptr;
#if defined(__x86_64__)
        if (std::strcmp(forced, "avx2") == 0 && isa.avx2 && isa.fma) return &gemm::avx2;
        if (std::strcmp(forced, "avx512") == 0 && isa.avx512() && isa.fma) return &gemm::avx512;
#endif
        if (std::strcmp(forced, "avx2") == 0 || std::strcmp(forced, "avx512") == 0)
            fail("KINDRED_GEMM={}: this CPU cannot run it ({})", forced, describe(isa));
        fail("KINDRED_GEMM={}: expected openblas, avx2 or avx512", forced);
    }
    switch (gemm::choose(isa, openblas_core())) {
#if defined(__x86_64__)
        case gemm::Choice::Avx512: return &gemm::avx512;
        case gemm::Choice::Avx2: return &gemm::avx2;
#endif
        default: return nullptr;
    }
}

const gemm::Variant* chosen_variant() {
    static const gemm::Variant* const variant = choose_variant();
    return variant;
}

// Kernels call sgemm from inside core/thread_pool regions, one call per thread, so OpenBLAS must
// not start threads of its own: they would compete with the pool for the same cores.
void pin_openblas_to_one_thread() {
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
           std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
    if (const gemm::Variant* variant = chosen_variant()) {
        gemm::run(*variant, {trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc});
        return;
    }
    pin_openblas_to_one_thread();
    const auto i = [](std::int64_t value) { return static_cast<blasint>(value); };
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, i(m), i(n),
                i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

const char* sgemm_path() {
    const gemm::Variant* variant = chosen_variant();
    return variant != nullptr ? variant->name : "OpenBLAS";
}

const char* openblas_core() { return openblas_get_corename(); }

namespace gemm {

Choice choose(const CpuIsa& isa, std::string_view openblas_core) {
    // OpenBLAS's x86-64 cores whose sgemm uses the widest vectors of their CPUs.
    constexpr std::string_view avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    constexpr std::string_view avx2_cores[] = {"Haswell", "Zen"};
    const auto among = [&](const auto& cores) {
        for (const std::string_view core : cores)
            if (core == openblas_core) return true;
        return false;
    };
    if (isa.avx512() && isa.fma) return among(avx512_cores) ? Choice::OpenBlas : Choice::Avx512;
    if (isa.avx2 && isa.fma) return among(avx512_cores) || among(avx2_cores) ? Choice::OpenBlas : Choice::Avx2;
    return Choice::OpenBlas;
}

void run(const Variant& variant, const Problem& problem) {
    // The calling thread's packing space, grown to the largest variant seen; allocated without
    // being written, so that only the pages a product's shape touches become resident.
    thread_local AlignedArray<float> space;
    thread_local std::int64_t space_floats = 0;
    constexpr std::int64_t align_floats = 16;  // 64 bytes
    const std::int64_t pack_a = (variant.pack_a_floats + align_floats - 1) / align_floats * align_floats;
    const std::int64_t needed = pack_a + variant.pack_b_floats;
    if (space_floats < needed) {
        space_floats = 0;
        space = aligned_array<float>(needed);
        space_floats = needed;
    }
    variant.run(problem, space.get(), space.get() + pack_a);
}

}  // namespace gemm
}  // namespace kindred::kernels::cpu
