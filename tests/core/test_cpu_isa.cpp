// Tests of core/cpu_isa: the features it reports agree with the compiler runtime's own cpuid
// reading (libgcc's __builtin_cpu_supports, which also checks the OS-saved state for AVX and
// AVX-512), and the description names them.
#include <gtest/gtest.h>

#include "core/cpu_isa.h"

namespace kindred {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
TEST(CpuIsa, AgreesWithTheCompilerRuntime) {
    const CpuIsa& isa = cpu_isa();
    EXPECT_EQ(isa.avx2, __builtin_cpu_supports("avx2") != 0);
    EXPECT_EQ(isa.fma, __builtin_cpu_supports("fma") != 0);
    EXPECT_EQ(isa.avx512f, __builtin_cpu_supports("avx512f") != 0);
    EXPECT_EQ(isa.avx512bw, __builtin_cpu_supports("avx512bw") != 0);
    EXPECT_EQ(isa.avx512vl, __builtin_cpu_supports("avx512vl") != 0);
    EXPECT_EQ(isa.avx512bf16, __builtin_cpu_supports("avx512bf16") != 0);
    EXPECT_EQ(isa.avx512vnni, __builtin_cpu_supports("avx512vnni") != 0);
    // AMX also needs the kernel's permission, which libgcc does not ask for.
    if (isa.amx_bf16) {
        EXPECT_TRUE(__builtin_cpu_supports("amx-bf16"));
    }
    if (isa.amx_int8) {
        EXPECT_TRUE(__builtin_cpu_supports("amx-int8"));
    }
    EXPECT_FALSE(isa.vendor.empty());
    EXPECT_GT(isa.family, 0);
}
#endif

TEST(CpuIsa, DescriptionNamesTheFeatures) {
    CpuIsa isa;
    isa.vendor = "GenuineIntel";
    isa.brand = "Intel(R) Xeon(R) Platinum";
    isa.family = 6;
    isa.model = 207;
    isa.avx2 = isa.fma = isa.avx512f = isa.avx512bw = isa.avx512vl = isa.amx_bf16 = isa.amx_int8 = true;
    EXPECT_EQ(describe(isa), "GenuineIntel family 6 model 207 (Intel(R) Xeon(R) Platinum): AVX2 FMA AVX512F AVX512BW "
                             "AVX512VL AMX-BF16 AMX-INT8");
    EXPECT_EQ(describe(CpuIsa{}), "non-x86 CPU: no AVX2");
    EXPECT_EQ(&cpu_isa(), &cpu_isa());
}

}  // namespace
}  // namespace kindred
