// core/cpu_isa.cpp — cpuid, XCR0 and the AMX permission (see the header).
#include "core/cpu_isa.h"

#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KINDRED_X86 1
#endif
#if defined(KINDRED_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kindred {
namespace {

#ifdef KINDRED_X86
struct Registers {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// cpuid leaf/subleaf; zeros for a leaf the CPU does not have.
Registers cpuid(unsigned leaf, unsigned subleaf = 0) {
    Registers r;
    if (__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx) == 0) return Registers{};
    return r;
}

bool bit(unsigned word, int index) { return ((word >> index) & 1u) != 0; }

// XCR0: the register states the OS saves (readable only when cpuid reports OSXSAVE).
std::uint64_t saved_states() {
    unsigned low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return (static_cast<std::uint64_t>(high) << 32) | low;
}

// Linux hands out AMX tile data only to a process that asks (XFEATURE_XTILEDATA).
bool request_amx_permission() {
#ifdef __linux__
    constexpr long arch_req_xcomp_perm = 0x1023;
    constexpr long xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return false;
#endif
}

CpuIsa detect() {
    CpuIsa isa;
    const Registers vendor = cpuid(0);
    char name[13] = {};
    std::memcpy(name, &vendor.ebx, 4);
    std::memcpy(name + 4, &vendor.edx, 4);
    std::memcpy(name + 8, &vendor.ecx, 4);
    isa.vendor = name;

    if (cpuid(0x80000000).eax >= 0x80000004) {
        char brand[49] = {};
        for (unsigned i = 0; i < 3; ++i) {
            const Registers r = cpuid(0x80000002 + i);
            std::memcpy(brand + 16 * i, &r, 16);
        }
        isa.brand = brand;
        const auto first = isa.brand.find_first_not_of(' ');
        isa.brand = first == std::string::npos ? "" : isa.brand.substr(first, isa.brand.find_last_not_of(' ') - first + 1);
    }

    const Registers basic = cpuid(1);
    const int base_family = static_cast<int>((basic.eax >> 8) & 0xf);
    const int base_model = static_cast<int>((basic.eax >> 4) & 0xf);
    isa.family = base_family == 0xf ? base_family + static_cast<int>((basic.eax >> 20) & 0xff) : base_family;
    isa.model = base_family == 0x6 || base_family == 0xf ? base_model + static_cast<int>(((basic.eax >> 16) & 0xf) << 4)
                                                         : base_model;

    if (!bit(basic.ecx, 27)) return isa;  // no OSXSAVE: the OS saves no vector state beyond SSE
    const std::uint64_t states = saved_states();
    const bool ymm = (states & 0x6) == 0x6;       // SSE and AVX state
    const bool zmm = (states & 0xe0) == 0xe0;     // opmask, ZMM0-15 upper halves, ZMM16-31
    const bool tiles = (states & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
    if (!ymm) return isa;

    const Registers extended = cpuid(7);
    const Registers extended1 = cpuid(7, 1);
    isa.fma = bit(basic.ecx, 12) && bit(basic.ecx, 28);
    isa.f16c = bit(basic.ecx, 29);
    isa.avx2 = bit(extended.ebx, 5);
    if (zmm) {
        isa.avx512f = bit(extended.ebx, 16);
        isa.avx512bw = bit(extended.ebx, 30);
        isa.avx512vl = bit(extended.ebx, 31);
        isa.avx512bf16 = isa.avx512f && bit(extended1.eax, 5);
        isa.avx512vnni = isa.avx512f && bit(extended.ecx, 11);
    }
    const bool amx_tiles = zmm && tiles && bit(extended.edx, 24) && request_amx_permission();
    isa.amx_bf16 = amx_tiles && bit(extended.edx, 22);
    isa.amx_int8 = amx_tiles && bit(extended.edx, 25);
    return isa;
}
#else
CpuIsa detect() { return CpuIsa{}; }
#endif

}  // namespace

const CpuIsa& cpu_isa() {
    static const CpuIsa isa = detect();
    return isa;
}

std::string describe(const CpuIsa& isa) {
    std::string text = isa.vendor.empty() ? std::string("non-x86 CPU") : isa.vendor;
    if (!isa.vendor.empty()) text += " family " + std::to_string(isa.family) + " model " + std::to_string(isa.model);
    if (!isa.brand.empty()) text += " (" + isa.brand + ")";
    text += ":";
    const std::pair<bool, const char*> features[] = {
        {isa.avx2, "AVX2"},         {isa.fma, "FMA"},           {isa.f16c, "F16C"},
        {isa.avx512f, "AVX512F"},   {isa.avx512bw, "AVX512BW"}, {isa.avx512vl, "AVX512VL"},
        {isa.avx512bf16, "AVX512_BF16"}, {isa.avx512vnni, "AVX512_VNNI"}, {isa.amx_bf16, "AMX-BF16"},
        {isa.amx_int8, "AMX-INT8"},
    };
    bool any = false;
    for (const auto& [present, name] : features)
        if (present) {
            text += ' ';
            text += name;
            any = true;
        }
    if (!any) text += " no AVX2";
    return text;
}

}  // namespace kindred
