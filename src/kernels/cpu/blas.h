// kernels/cpu/blas.h — how the CPU kernels call OpenBLAS (internal to kernels/cpu).
// Kernels call sgemm from inside core/thread_pool regions, one call per thread, so OpenBLAS must
// not start threads of its own: they would compete with the pool for the same cores.
#pragma once

#include <mutex>

#include <cblas.h>

namespace kindred::kernels::cpu {

inline void pin_openblas_to_one_thread() {
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace kindred::kernels::cpu
