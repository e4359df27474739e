// RMSNorm forward on the GPU against kernels::rmsnorm_forward. Both sum x² in double and do the
// rest in correctly rounded fp32; only the order of the double sum differs, which moves the fp32
// mean by at most one rounding in rare ties, so the outputs agree to ~1e-7 relative.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/kernel_test_util.h"
#include "kernels/norm.h"
#include "kernels_cuda/cuda_test_util.h"

namespace kindred {
namespace {

using testing::fresh_seed;
using testing::relative_error;

// A one-ulp change of the fp32 mean moves rstd by ~2^-25 relative; 1e-6 leaves 30x for that and
// for an occasional one-ulp output difference it causes.
constexpr double kTolerance = 1e-6;

TEST(CudaRmsnorm, ForwardMatchesCpu) {
    KINDRED_REQUIRE_CUDA_DEVICE();
    // 576 and 2880 are SmolLM2's and gpt-oss-20b's hidden sizes; 100 is not a multiple of the warp.
    for (std::int64_t dim : {100, 576, 2880}) {
        for (std::int64_t rows : {1, 37}) {
            for (bool offset : {false, true}) {
                const std::uint32_t seed = fresh_seed();
                SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(dim) + (offset ? ", 1 + w" : ", w") +
                             ", seed " + std::to_string(seed));
                const auto x = testing::random_floats(static_cast<std::size_t>(rows * dim), seed, -2.0f, 2.0f);
                const auto w = testing::random_floats(static_cast<std::size_t>(dim), seed + 1, 0.5f, 1.5f);
                const float eps = 1e-5f;
                std::vector<float> cpu(x.size()), cpu_rstd(static_cast<std::size_t>(rows));
                kernels::rmsnorm_forward(cpu.data(), cpu_rstd.data(), x.data(), w.data(), rows, dim, eps, offset);

                const auto d_x = testing::to_device(x);
                const auto d_w = testing::to_device(w);
                cuda::DeviceBuffer d_out(x.size() * sizeof(float)), d_rstd(cpu_rstd.size() * sizeof(float));
                d_out.fill_bytes(0xFF);
                d_rstd.fill_bytes(0xFF);
                cuda::rmsnorm_forward(d_out.as<float>(), d_rstd.as<float>(), d_x.as<float>(), d_w.as<float>(), rows,
                                      dim, eps, offset);
                const auto out = testing::from_device<float>(d_out, x.size());
                const auto rstd = testing::from_device<float>(d_rstd, cpu_rstd.size());
                EXPECT_EQ(testing::count_non_finite(out), 0u);
                EXPECT_EQ(testing::count_non_finite(rstd), 0u);
                EXPECT_LE(relative_error(out, cpu), kTolerance);
                EXPECT_LE(relative_error(rstd, cpu_rstd), kTolerance);

                // In place (out aliases x), without rstd: the same values.
                auto d_inplace = testing::to_device(x);
                cuda::rmsnorm_forward(d_inplace.as<float>(), nullptr, d_inplace.as<float>(), d_w.as<float>(), rows,
                                      dim, eps, offset);
                EXPECT_EQ(testing::from_device<float>(d_inplace, x.size()), out);
            }
        }
    }
}

TEST(CudaRmsnorm, RejectsBadShapes) {
    // Checked before any device work: runs everywhere.
    EXPECT_THROW(cuda::rmsnorm_forward(nullptr, nullptr, nullptr, nullptr, -1, 8, 1e-5f, false), Error);
    EXPECT_THROW(cuda::rmsnorm_forward(nullptr, nullptr, nullptr, nullptr, 2, 0, 1e-5f, false), Error);
    EXPECT_NO_THROW(cuda::rmsnorm_forward(nullptr, nullptr, nullptr, nullptr, 0, 8, 1e-5f, false));
}

}  // namespace
}  // namespace kindred
