// kernels/lora.h — low-rank adapters on a frozen linear layer (PEFT's formula), the dropout PEFT
// applies to the adapter's input, and their hand-written backward passes.
//
//   u  = dropout(x)                      (x itself when dropout is off)
//   xa = u · Aᵀ                          A [rank x in]   (saved for backward)
//   y += scale · xa · Bᵀ                 B [out x rank]
// with scale = alpha / rank, or alpha / √rank for rsLoRA. The frozen product x · Wᵀ is the
// caller's (matmul_forward); these functions only add the adapter's term.
//
// Backward passes ADD into their gradient buffers (the caller zeroes them once per accumulation
// cycle); any gradient pointer may be null to skip that gradient.
//
// Random numbers (documented exactly, because they cannot match torch's generator; golden tests
// load torch's values from files instead): value i (0-based) of stream `seed` is the (i+1)-th
// output of SplitMix64 seeded with `seed`, i.e. mix(seed + (i+1) · 0x9E3779B97F4A7C15) with
// mix(z) = z ^= z >> 30, z *= 0xBF58476D1CE4E5B9, z ^= z >> 27, z *= 0x94D049BB133111EB,
// z ^= z >> 31 (mod 2⁶⁴); its uniform in [0, 1) is (value >> 40) · 2⁻²⁴. Being counter-based, any
// element can be drawn independently, so results do not depend on threads.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace kindred::kernels {

struct LoraShape {
    std::int64_t tokens = 0;
    std::int64_t in = 0;    // in_features of the adapted linear
    std::int64_t out = 0;   // out_features
    std::int64_t rank = 0;  // r
    float scale = 1.0f;     // from lora_scale
    // BF16 (QLoRA's compute dtype, kernels/matmul.h), where AMX-BF16 runs: every product takes its
    // operands rounded to bf16 once and sums in fp32 on AMX tiles, as torch's autocast runs PEFT's
    // adapters; the scale is folded into the smaller operand before it is rounded (bf16(scale · xa),
    // bf16(scale · B): exact for PEFT's power-of-two alpha / rank). xa stays fp32. F32, or BF16
    // without AMX: fp32 sgemm.
    Precision precision = Precision::F32;
};

// alpha / rank (PEFT's default) or alpha / √rank (use_rslora). Throws Error when rank <= 0.
float lora_scale(float alpha, std::int64_t rank, bool rslora);

// Uniform in [0, 1) for element `index` of stream `seed` (see the header comment).
float counter_uniform(std::uint64_t seed, std::uint64_t index);

// PEFT's default init (init_lora_weights=True): A [rank x in] from kaiming_uniform_(a=√5), whose
// bound is gain·√(3 / fan_in) with gain = √(2 / (1 + a²)) = √(1/3), i.e. exactly 1/√in; B = 0.
// a[i] = bound · (2 · counter_uniform(seed, i) − 1).
void lora_init(float* a, float* b, std::int64_t rank, std::int64_t in, std::int64_t out, std::uint64_t seed);

// Inverted dropout as torch.nn.Dropout in training: keep[i] = counter_uniform(seed, offset + i) ≥ p,
// out[i] = keep[i] ? x[i] / (1 − p) : 0. The mask is kept for backward; `offset` lets a caller
// draw disjoint parts of one stream (e.g. one per layer and step). 0 ≤ p < 1; out may alias x.
void dropout_forward(float* out, std::uint8_t* keep, const float* x, std::int64_t n, float p, std::uint64_t seed,
                     std::uint64_t offset);
// dx[i] += keep[i] ? dout[i] / (1 − p) : 0.
void dropout_backward(float* dx, const float* dout, const std::uint8_t* keep, std::int64_t n, float p);

// xa[tokens x rank] = u · Aᵀ; y[tokens x out] += scale · xa · Bᵀ. u is the (dropped-out) input.
void lora_forward(float* y, float* xa, const float* u, const float* a, const float* b, const LoraShape& shape);

// matmul_forward(y, x, w, bias, tokens, precision) then lora_forward(y, xa, u, a, b) in one call,
// with the same bits (w: the adapted frozen weight [out x in]; u: x itself, or x after the
// adapter's dropout). In BF16 on AMX, for more than a few tokens and without bias, x is rounded
// once for both products when u is x, and the adapter's term joins the frozen product's sums on
// the tiles instead of a second pass over y.
void linear_with_lora_forward(float* y, float* xa, const float* x, const float* u, const Matrix& w, const float* bias,
                              const float* a, const float* b, const LoraShape& shape);

// matmul_backward_input(dx, dy, w, tokens, precision) then lora_backward(dx, da, db, dy, x, xa,
// a, b) for an adapter without dropout (its du is dx), in one call with the same bits. In BF16 on
// AMX dy is rounded once for both, and du's term joins the frozen product's sums on the tiles.
void linear_with_lora_backward(float* dx, float* da, float* db, const float* dy, const float* x, const float* xa,
                               const Matrix& w, const float* a, const float* b, const LoraShape& shape);

// Given dy [tokens x out] and the forward's u and xa:
//   db [out x rank]   += scale · dyᵀ · xa
//   da [rank x in]    += (scale · dy · B)ᵀ · u
//   du [tokens x in]  += (scale · dy · B) · A
// (du is the gradient w.r.t. u; pass it through dropout_backward when dropout is on).
void lora_backward(float* du, float* da, float* db, const float* dy, const float* u, const float* xa, const float* a,
                   const float* b, const LoraShape& shape);

}  // namespace kindred::kernels
