// kernels/cpu/cpu_paths.cpp — see kernels/cpu_paths.h.
#include "kernels/cpu_paths.h"

#include <fmt/format.h>

#include <cstring>
#include <string>

#include "core/cpu_isa.h"
#include "kernels/cpu/bf16_gemm.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/int8_dot.h"
#include "kernels/cpu/simd.h"

namespace kindred::kernels {

std::string describe_cpu_paths() {
    const char* gemm = cpu::sgemm_path();
    const bool openblas_runs = std::strcmp(gemm, "OpenBLAS") == 0;
#if defined(KINDRED_AVX512)
    const char* vector_code = "AVX-512F (element-wise), AVX2+FMA";
#elif defined(KINDRED_AVX2)
    const char* vector_code = "AVX2+FMA";
#else
    const char* vector_code = "portable C++ (built without -mavx2 -mfma)";
#endif
    const std::string gemm_path = openblas_runs ? fmt::format("OpenBLAS, core {}", cpu::openblas_core())
                                                : fmt::format("{} (OpenBLAS picked core {}: not used)", gemm,
                                                              cpu::openblas_core());
    return fmt::format("{}; fp32 GEMM: {}; bf16 products: {}; int8 products: {}; mat-vec and element-wise: {}",
                       describe(cpu_isa()), gemm_path, cpu::bf16::available() ? "AMX-BF16 tiles" : "fp32 (no AMX-BF16)",
                       cpu::int8::describe_code(), vector_code);
}

}  // namespace kindred::kernels
