// kernels/cpu/exact_float.h — included by the kernels whose results must equal a reference's bit
// for bit (ggml's dequantizers and quantizers, numpy): every x*d+m rounded twice, as those references
// do; a fused multiply-add rounds once. GCC fuses by default (even across intrinsics), clang within
// an expression, so contraction is switched off for the including file from here on.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
