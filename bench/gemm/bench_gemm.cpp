// kindred_bench_gemm [--reps R]: one-thread GFLOP/s of the fp32 products a QLoRA step of
// SmolLM2-135M (hidden 576, MLP 1536, head_dim 64, rank 16; 512-token rows) hands to cpu::sgemm,
// on every path it can take on this CPU: Kindred's AVX-512 and AVX2 kernels and OpenBLAS with the
// core it chose (OPENBLAS_CORETYPE, set by run.sh, overrides that choice). Each shape's time is the best
// of R runs in CPU time of the calling thread, so that waiting for a core on a shared machine is
// not counted. Output: one JSON object per line; the first names the CPU and its paths.
#include <ctime>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <cblas.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../bench_main.h"
#include "core/cpu_isa.h"
#include "core/error.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu_paths.h"

namespace {

using kindred::kernels::cpu::gemm::Problem;

struct Shape {
    const char* what;
    bool trans_a, trans_b;
    std::int64_t m, n, k;
};

// The shapes one thread of kernels/cpu sees in a 4 x 512-token step on two threads.
constexpr Shape shapes[] = {
    {"q/o/k/v/gate/up forward: x . panel^T", false, true, 512, 448, 576},
    {"down forward: x . panel^T", false, true, 512, 160, 1536},
    {"input gradient: dy . panel", false, false, 512, 288, 448},
    {"cross-entropy logits: rows . chunk^T", false, true, 256, 1024, 576},
    {"attention scores: q . k^T", false, true, 64, 512, 64},
    {"attention output: p . v", false, false, 64, 64, 512},
    {"attention dk: ds^T . q", true, false, 512, 64, 64},
    {"LoRA down: x . a^T", false, true, 512, 16, 576},
    {"LoRA up: xa . b^T", false, true, 512, 576, 16},
};

double thread_seconds() {
    timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

int run(int argc, char** argv) {
    int reps = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--reps") == 0) reps = std::stoi(argv[i + 1]);
        else kindred::fail("unknown flag {}", argv[i]);
    }
    openblas_set_num_threads(1);
    fmt::print("{}\n", nlohmann::json{{"cpu_paths", kindred::kernels::describe_cpu_paths()}}.dump());

    struct Path {
        std::string name;
        void (*product)(const Problem&);
    };
    std::vector<Path> paths;
#if defined(__x86_64__)
    const auto& isa = kindred::cpu_isa();
    if (isa.avx512() && isa.fma)
        paths.push_back({kindred::kernels::cpu::gemm::avx512.name,
                         [](const Problem& p) { run(kindred::kernels::cpu::gemm::avx512, p); }});
    if (isa.avx2 && isa.fma)
        paths.push_back({kindred::kernels::cpu::gemm::avx2.name,
                         [](const Problem& p) { run(kindred::kernels::cpu::gemm::avx2, p); }});
#endif
    paths.push_back({fmt::format("OpenBLAS {}", openblas_get_corename()), [](const Problem& p) {
                         cblas_sgemm(CblasRowMajor, p.trans_a ? CblasTrans : CblasNoTrans,
                                     p.trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(p.m),
                                     static_cast<blasint>(p.n), static_cast<blasint>(p.k), p.alpha, p.a,
                                     static_cast<blasint>(p.lda), p.b, static_cast<blasint>(p.ldb), p.beta, p.c,
                                     static_cast<blasint>(p.ldc));
                     }});

    for (const Shape& s : shapes) {
        const std::int64_t lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
        std::vector<float> a(static_cast<std::size_t>(s.m * s.k), 0.5f), b(static_cast<std::size_t>(s.k * s.n), 0.25f);
        std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
        const Problem problem{s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb,
                              0.0f, c.data(), s.n};
        for (const Path& path : paths) {
            double best = 1e30;
            for (int r = 0; r < reps + 1; ++r) {  // the first run warms caches and packing space
                const double start = thread_seconds();
                path.product(problem);
                const double seconds = thread_seconds() - start;
                if (r > 0 && seconds < best) best = seconds;
            }
            const double gflops = 2.0 * static_cast<double>(s.m * s.n * s.k) / best / 1e9;
            fmt::print("{}\n", nlohmann::json{{"shape", s.what}, {"m", s.m}, {"n", s.n}, {"k", s.k},
                                              {"path", path.name}, {"gflops", gflops}}
                                   .dump());
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main("kindred_bench_gemm", run, argc, argv); }
