// tests/kernels/nf4_test_util.h — the NF4 kernels against the layout they replaced. NF4 tensors
// once stored each 64-block's absmax in fp32 (nf4_absmax: bitsandbytes' restoration) before its
// codes, and every kernel wrote codebook[code] · absmax, one fp32 product. Now they keep the 8-bit
// absmax codes and restore each absmax as they read a block (core/dtype.h's Nf4Layout). Used on
// random tensors (tests/kernels/test_quantize.cpp) and real ones (tests/model/test_quantize_weights.cpp).
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/dequantize.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"

namespace kindred::testing {

// Index of the first element whose bits differ, or -1.
inline std::int64_t first_difference(const float* got, const float* want, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i)
        if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i])) return i;
    return -1;
}

// Quantizes the [rows x cols] `values` to NF4 and checks, bit for bit against the fp32-absmax
// blocks' output: both dequantizers (AVX2 where built, and scalar) over the whole tensor and over
// each row alone, and a one-token product (the mat-vec takes the same dot over the same floats).
inline void expect_nf4_kernels_restore_fp32_absmax(const std::vector<float>& values, std::int64_t rows,
                                                   std::int64_t cols) {
    const std::int64_t n = rows * cols;
    const Nf4State state = quantize_nf4(DType::F32, values.data(), n);
    const std::vector<float> absmax = nf4_absmax(state);
    std::vector<float> expected(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        const std::uint8_t byte = state.packed[static_cast<std::size_t>(i / 2)];
        const int code = i % 2 == 0 ? byte >> 4 : byte & 0xF;
        expected[static_cast<std::size_t>(i)] = kNf4Codebook[static_cast<std::size_t>(code)] *
                                                absmax[static_cast<std::size_t>(i / kNf4BlockSize)];
    }
    std::vector<std::uint8_t> tensor(matrix_bytes(DType::NF4, static_cast<std::uint64_t>(n)));
    nf4_pack(state, tensor.data());

    std::vector<float> got(static_cast<std::size_t>(n));
    dequantize_row(DType::NF4, tensor.data(), got.data(), n);
    ASSERT_EQ(first_difference(got.data(), expected.data(), n), -1) << "fast dequantizer, whole tensor";
    detail::dequantize_row_scalar(DType::NF4, tensor.data(), got.data(), n);
    ASSERT_EQ(first_difference(got.data(), expected.data(), n), -1) << "scalar dequantizer, whole tensor";
    std::vector<float> row(static_cast<std::size_t>(cols));
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* want = expected.data() + r * cols;
        dequantize_span(DType::NF4, tensor.data(), n, r * cols, row.data(), cols);
        ASSERT_EQ(first_difference(row.data(), want, cols), -1) << "fast dequantizer, row " << r;
        detail::dequantize_span_scalar(DType::NF4, tensor.data(), n, r * cols, row.data(), cols);
        ASSERT_EQ(first_difference(row.data(), want, cols), -1) << "scalar dequantizer, row " << r;
    }

    const std::vector<float> x = random_floats(static_cast<std::size_t>(cols), 77);
    std::vector<float> y(static_cast<std::size_t>(rows)), y_fp32(y.size());
    kernels::matmul_forward(y.data(), x.data(), kernels::Matrix{DType::NF4, rows, cols, tensor.data()}, nullptr, 1);
    kernels::matmul_forward(y_fp32.data(), x.data(), kernels::Matrix{DType::F32, rows, cols, expected.data()}, nullptr, 1);
    EXPECT_EQ(first_difference(y.data(), y_fp32.data(), rows), -1) << "one-token product";
}

}  // namespace kindred::testing
