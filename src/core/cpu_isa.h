// core/cpu_isa.h — the instructions this CPU runs, read once from cpuid and checked against what the
// OS saves on a context switch (XCR0), so that every kernel chooses its code from the same facts.
// Kernels choose by feature, never by CPU model: a CPU newer than any model table (a library's or
// ours) still gets its widest instructions. A feature counts only when usable: AVX2/FMA need the
// OS to save YMM state, AVX-512 its opmask and ZMM state, AMX its tile state and, on Linux, the
// per-process permission (arch_prctl), which is asked for here, once.
#pragma once

#include <string>

namespace kindred {

struct CpuIsa {
    std::string vendor;  // cpuid's vendor string: "GenuineIntel", "AuthenticAMD"
    std::string brand;   // the processor brand string, trimmed: "AMD EPYC 7B12"
    int family = 0;      // display family and model (base plus extended), for reports only
    int model = 0;
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512vl = false;
    bool avx512bf16 = false;
    bool avx512vnni = false;
    bool amx_bf16 = false;  // AMX-TILE and AMX-BF16, tile state saved by the OS, permission granted
    bool amx_int8 = false;  // AMX-TILE and AMX-INT8, likewise

    // AVX-512 as the fp32 kernels use it: F, BW and VL (every AVX-512 CPU since Skylake-SP).
    bool avx512() const { return avx512f && avx512bw && avx512vl; }
};

// This CPU (detected on first call; later calls return the same object).
const CpuIsa& cpu_isa();

// One line for logs and benchmarks: "AuthenticAMD family 23 model 49 (AMD EPYC 7B12): AVX2 FMA F16C".
std::string describe(const CpuIsa& isa);

}  // namespace kindred
