// kernels/cpu/matmul_bf16.h — Precision::BF16's products against frozen weights (matmul.cpp) for
// callers inside kernels/cpu that round the activations themselves and add a second product in
// the same tile sums (lora.cpp: a frozen projection and its adapter's term in one pass over y).
#pragma once

#include <cstdint>

#include "kernels/cpu/bf16_gemm.h"
#include "kernels/matmul.h"

namespace kindred::kernels::cpu {

// y[tokens x w.rows] = x16 · wᵀ (+ then's a2 · B2), on AMX. x16: tokens rows of w.cols bf16
// values (round_rows' layout, row stride round_up(w.cols, 32)); then->packed: B2 packed whole
// ([then->k x w.rows]), each thread's panel of w's rows reading its own column blocks of it.
// Each thread owns a range of w's rows; a panel of them is w.packed's or dequantized and packed
// into the thread's scratch. Throws Error as matmul_forward does.
void bf16_matmul_forward(float* y, const std::uint16_t* x16, const Matrix& w, std::int64_t tokens,
                         const bf16::SecondProduct* then);

// dx[tokens x w.cols] += dy16 · w (+ then's a2 · B2), on AMX. dy16: tokens rows of w.rows bf16
// values (row stride round_up(w.rows, 32)); then->a: tokens rows; then->packed: B2 packed whole
// ([then->k x w.cols]). Work items are (token block, column chunk) pairs, each summing its panels
// of w's rows (w.packed's, or dequantized and packed into the thread's scratch) and then `then`
// into its tiles. Throws Error as matmul_backward_input does.
void bf16_matmul_backward_input(float* dx, const std::uint16_t* dy16, const Matrix& w, std::int64_t tokens,
                                const bf16::SecondProduct* then);

}  // namespace kindred::kernels::cpu
