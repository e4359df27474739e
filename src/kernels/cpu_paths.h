// kernels/cpu_paths.h — which code the CPU kernels run on this machine, in one line for
// `--verbose` and benchmark output: the instruction sets core/cpu_isa found, the fp32 GEMM chosen
// from them (kernels/cpu/gemm_f32.h: OpenBLAS when the core it picked uses the CPU's widest
// vectors, else Kindred's own), how bf16 products run, and the vector code the build compiled into
// the element-wise kernels and the decode mat-vec.
#pragma once

#include <string>

namespace kindred::kernels {

std::string describe_cpu_paths();

}  // namespace kindred::kernels
