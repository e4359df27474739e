// GPU matmuls against quantized weights (dequantize + cuBLAS) compared with the CPU kernels
// (kernels/matmul.h) and with a float64 product of the same dequantized weights, by relative error
// ‖got − want‖ / ‖want‖ at a tolerance per GEMM precision (see kTolerance).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/dequantize.h"
#include "kernels/kernel_test_util.h"
#include "kernels/matmul.h"
#include "kernels_cuda/cuda_test_util.h"

namespace kindred {
namespace {

using cuda::GemmPrecision;
using testing::fresh_seed;
using testing::relative_error;

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                        DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::MXFP4};
const GemmPrecision kPrecisions[] = {GemmPrecision::F32, GemmPrecision::TF32, GemmPrecision::F16,
                                     GemmPrecision::BF16};

// Bounds on the relative error against the float64 product, with room for the CPU's own fp32
// error (~1e-6 here) when comparing with it. Sums of random-sign terms keep the per-operand
// rounding error's size: u = unit roundoff of the operand format.
double tolerance(GemmPrecision precision) {
    switch (precision) {
        // fp32 accumulation over k <= 1536 terms: ~sqrt(k)·2^-24 ≈ 2e-6; 1e-5 leaves 5x.
        case GemmPrecision::F32: return 1e-5;
        // tf32 keeps 10 mantissa bits and the tensor cores may truncate rather than round the
        // operands: up to 2^-10 ≈ 1e-3 per operand with a bias towards zero; 4e-3 leaves ~3x.
        case GemmPrecision::TF32: return 4e-3;
        // fp16 operands rounded to nearest: u = 2^-11 per operand, ~4e-4 for a product; 2e-3 leaves 5x.
        case GemmPrecision::F16: return 2e-3;
        // bf16 operands: u = 2^-8, ~3e-3 for a product; 1e-2 leaves 3x (METHOD: 1e-3 .. 1e-2).
        case GemmPrecision::BF16: return 1e-2;
    }
    return 0.0;
}

struct Problem {
    DType type;
    std::int64_t rows, cols, tokens;
    std::uint32_t seed;
    std::vector<std::uint8_t> weight;  // stored bytes
    std::vector<float> dense;          // the same weight dequantized on the CPU, [rows x cols]

    Problem(DType t, std::int64_t r, std::int64_t c, std::int64_t n)
        : type(t), rows(r), cols(c), tokens(n), seed(fresh_seed()) {
        weight = testing::random_weights(type, rows, cols, seed);
        dense.resize(static_cast<std::size_t>(rows * cols));
        dequantize_row(type, weight.data(), dense.data(), rows * cols);
    }
    std::string describe(GemmPrecision precision) const {
        return std::string(dtype_name(type)) + " " + std::to_string(rows) + " x " + std::to_string(cols) + ", " +
               std::to_string(tokens) + " tokens, " + std::string(cuda::precision_name(precision)) + ", seed " +
               std::to_string(seed);
    }
    kernels::Matrix host_matrix() const { return {type, rows, cols, weight.data()}; }
};

// One forward product of a fresh random 72 x 512 weight of `type` (72 rows: not a multiple of
// cuBLAS's usual tiles; 512 columns: whole K-quant blocks) in every precision, with or without bias.
void check_forward(cuda::Matmul& matmul, DType type, std::int64_t tokens, bool with_bias) {
    const Problem p(type, 72, 512, tokens);
    const auto x = testing::random_floats(static_cast<std::size_t>(tokens * p.cols), p.seed + 1);
    const auto bias = testing::random_floats(static_cast<std::size_t>(p.rows), p.seed + 2);
    const float* host_bias = with_bias ? bias.data() : nullptr;

    std::vector<double> want(static_cast<std::size_t>(tokens * p.rows));
    for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t r = 0; r < p.rows; ++r) {
            double sum = with_bias ? bias[static_cast<std::size_t>(r)] : 0.0;
            for (std::int64_t c = 0; c < p.cols; ++c)
                sum += static_cast<double>(x[static_cast<std::size_t>(t * p.cols + c)]) *
                       p.dense[static_cast<std::size_t>(r * p.cols + c)];
            want[static_cast<std::size_t>(t * p.rows + r)] = sum;
        }
    std::vector<float> cpu(want.size());
    kernels::matmul_forward(cpu.data(), x.data(), p.host_matrix(), host_bias, tokens);

    const auto d_weight = testing::to_device(p.weight);
    const auto d_x = testing::to_device(x);
    const auto d_bias = testing::to_device(bias);
    cuda::DeviceBuffer d_y(want.size() * sizeof(float));
    const kernels::Matrix w{type, p.rows, p.cols, d_weight.data()};
    for (GemmPrecision precision : kPrecisions) {
        SCOPED_TRACE(p.describe(precision) + (with_bias ? ", bias" : ""));
        d_y.fill_bytes(0xFF);
        matmul.forward(d_y.as<float>(), d_x.as<float>(), w, with_bias ? d_bias.as<float>() : nullptr, tokens,
                       precision);
        const auto got = testing::from_device<float>(d_y, want.size());
        EXPECT_EQ(testing::count_non_finite(got), 0u) << "unwritten (NaN-poisoned) outputs";
        // Up to 4 tokens the fused mat-vec computes in fp32 whatever the precision: held to fp32's bound.
        const double bound = tolerance(tokens <= 4 ? GemmPrecision::F32 : precision);
        EXPECT_LE(relative_error(got, want), bound);
        EXPECT_LE(relative_error(got, cpu), bound + 1e-5);
    }
}

TEST(CudaMatmul, DecodeForwardMatchesCpuAndFloat64) {
    // 1 to 4 tokens: the fused mat-vec, every token count it is instantiated for.
    KINDRED_REQUIRE_CUDA_DEVICE();
    cuda::Matmul matmul;
    for (DType type : kTypes)
        for (std::int64_t tokens : {1, 2, 3, 4}) check_forward(matmul, type, tokens, tokens % 2 == 1);
}

TEST(CudaMatmul, BatchForwardMatchesCpuAndFloat64ForEveryPrecision) {
    // 13 tokens (an odd prompt) and 64 (a training micro-batch): dequantize + cuBLAS.
    KINDRED_REQUIRE_CUDA_DEVICE();
    cuda::Matmul matmul;
    for (DType type : kTypes)
        for (std::int64_t tokens : {13, 64}) check_forward(matmul, type, tokens, tokens == 13);
}

TEST(CudaMatmul, BackwardInputAddsTheProductLikeTheCpu) {
    KINDRED_REQUIRE_CUDA_DEVICE();
    cuda::Matmul matmul;
    for (DType type : kTypes) {
        for (std::int64_t tokens : {1, 13, 64}) {
            const Problem p(type, 72, 512, tokens);
            const auto dy = testing::random_floats(static_cast<std::size_t>(tokens * p.rows), p.seed + 1);
            const auto dx0 = testing::random_floats(static_cast<std::size_t>(tokens * p.cols), p.seed + 2);

            // The increment alone is the reference's scale: dx0 would otherwise dilute the error.
            std::vector<double> increment(dx0.size());
            for (std::int64_t t = 0; t < tokens; ++t)
                for (std::int64_t c = 0; c < p.cols; ++c) {
                    double sum = 0.0;
                    for (std::int64_t r = 0; r < p.rows; ++r)
                        sum += static_cast<double>(dy[static_cast<std::size_t>(t * p.rows + r)]) *
                               p.dense[static_cast<std::size_t>(r * p.cols + c)];
                    increment[static_cast<std::size_t>(t * p.cols + c)] = sum;
                }
            std::vector<float> cpu = dx0;
            kernels::matmul_backward_input(cpu.data(), dy.data(), p.host_matrix(), tokens);
            std::vector<double> cpu_increment(dx0.size());
            for (std::size_t i = 0; i < dx0.size(); ++i)
                cpu_increment[i] = static_cast<double>(cpu[i]) - dx0[i];

            const auto d_weight = testing::to_device(p.weight);
            const auto d_dy = testing::to_device(dy);
            const kernels::Matrix w{type, p.rows, p.cols, d_weight.data()};
            for (GemmPrecision precision : kPrecisions) {
                SCOPED_TRACE(p.describe(precision));
                auto d_dx = testing::to_device(dx0);
                matmul.backward_input(d_dx.as<float>(), d_dy.as<float>(), w, tokens, precision);
                const auto got = testing::from_device<float>(d_dx, dx0.size());
                std::vector<double> got_increment(dx0.size());
                for (std::size_t i = 0; i < dx0.size(); ++i)
                    got_increment[i] = static_cast<double>(got[i]) - dx0[i];
                // Subtracting dx0 (|dx0| <= 1) back out costs at most 2^-24 absolute per element,
                // far below every tolerance relative to an increment of norm ~sqrt(72)·0.3 per element.
                EXPECT_LE(relative_error(got_increment, increment), tolerance(precision));
                EXPECT_LE(relative_error(got_increment, cpu_increment), tolerance(precision) + 1e-5);
            }
        }
    }
}

TEST(CudaMatmul, LargeShapeAgreesWithCpu) {
    // One product at a size where cuBLAS picks its large-tile tensor-core kernels (several waves of
    // blocks), against the CPU's OpenBLAS path: a wrong leading dimension or transpose that happens
    // to work on small shapes shows here.
    KINDRED_REQUIRE_CUDA_DEVICE();
    cuda::Matmul matmul;
    const Problem p(DType::Q4_1, 1536, 576, 256);  // SmolLM2's up projection, 256 tokens
    const auto x = testing::random_floats(static_cast<std::size_t>(p.tokens * p.cols), p.seed + 1);
    std::vector<float> cpu(static_cast<std::size_t>(p.tokens * p.rows));
    kernels::matmul_forward(cpu.data(), x.data(), p.host_matrix(), nullptr, p.tokens);
    const auto d_weight = testing::to_device(p.weight);
    const auto d_x = testing::to_device(x);
    cuda::DeviceBuffer d_y(cpu.size() * sizeof(float));
    for (GemmPrecision precision : kPrecisions) {
        SCOPED_TRACE(p.describe(precision));
        d_y.fill_bytes(0xFF);
        matmul.forward(d_y.as<float>(), d_x.as<float>(), {p.type, p.rows, p.cols, d_weight.data()}, nullptr, p.tokens,
                       precision);
        const auto got = testing::from_device<float>(d_y, cpu.size());
        const double error = relative_error(got, cpu);
        std::cout << "[   info   ] " << p.describe(precision) << ": relative error vs CPU " << error << "\n";
        EXPECT_EQ(testing::count_non_finite(got), 0u);
        EXPECT_LE(error, tolerance(precision) + 1e-5);
    }
}

TEST(CudaMatmul, RejectsBadShapes) {
    KINDRED_REQUIRE_CUDA_DEVICE();
    cuda::Matmul matmul;
    cuda::DeviceBuffer buffer(4096);
    float* f = buffer.as<float>();
    EXPECT_THROW(matmul.forward(f, f, {DType::Q4_1, 4, 48, buffer.data()}, nullptr, 1, GemmPrecision::F16), Error);
    EXPECT_THROW(matmul.forward(f, f, {DType::F32, 4, 0, buffer.data()}, nullptr, 1, GemmPrecision::F32), Error);
    EXPECT_THROW(matmul.backward_input(f, f, {DType::F32, 4, 8, buffer.data()}, -1, GemmPrecision::F32), Error);
    EXPECT_THROW(matmul.gemm(f, f, f, std::int64_t{1} << 40, 1, 1, true, GemmPrecision::F32, 0.0f), Error);
}

}  // namespace
}  // namespace kindred
