// Dequantization on the GPU must equal the CPU's dequantize_row bit for bit, for every supported
// type and every output type (fp16/bf16 outputs equal the CPU's fp32 result rounded by core/half.h).
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/dequantize.h"
#include "kernels/kernel_test_util.h"
#include "kernels_cuda/cuda_test_util.h"

namespace kindred {
namespace {

using cuda::OutputType;
using testing::fresh_seed;

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                        DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::MXFP4};

std::string out_name(OutputType out) {
    return out == OutputType::F32 ? "f32" : out == OutputType::F16 ? "f16" : "bf16";
}

// Expected output bits of element i: the CPU's fp32 value, or its fp16/bf16 rounding.
std::uint32_t expected_bits(OutputType out, float value) {
    if (out == OutputType::F16) return fp32_to_fp16(value);
    if (out == OutputType::BF16) return fp32_to_bf16(value);
    return std::bit_cast<std::uint32_t>(value);
}

void check_bit_exact(DType type, OutputType out, std::int64_t rows, std::int64_t cols) {
    const std::uint32_t seed = fresh_seed();
    SCOPED_TRACE(std::string(dtype_name(type)) + " -> " + out_name(out) + ", " + std::to_string(rows) + " x " +
                 std::to_string(cols) + ", seed " + std::to_string(seed));
    const std::int64_t n = rows * cols;
    const auto bytes = testing::random_weights(type, rows, cols, seed);
    std::vector<float> want(static_cast<std::size_t>(n));
    dequantize_row(type, bytes.data(), want.data(), n);

    const auto src = testing::to_device(bytes);
    const std::size_t width = out == OutputType::F32 ? 4 : 2;
    cuda::DeviceBuffer dst(static_cast<std::size_t>(n) * width);
    dst.fill_bytes(0xFF);  // NaN in every format; no expected value is NaN, so unwritten elements fail
    cuda::dequantize(type, src.data(), dst.data(), out, n);
    std::vector<std::uint8_t> got(dst.bytes());
    dst.download(got.data(), got.size());

    std::int64_t mismatches = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, got.data() + i * static_cast<std::int64_t>(width), width);
        const std::uint32_t wanted = expected_bits(out, want[static_cast<std::size_t>(i)]);
        if (bits != wanted && mismatches++ < 5)
            ADD_FAILURE() << "element " << i << ": got bits 0x" << std::hex << bits << ", want 0x" << wanted
                          << std::dec << " (cpu value " << want[static_cast<std::size_t>(i)] << ")";
    }
    EXPECT_EQ(mismatches, 0) << "of " << n << " elements";
}

TEST(CudaDequantize, BitExactWithCpuForEveryTypeAndOutput) {
    KINDRED_REQUIRE_CUDA_DEVICE();
    for (DType type : kTypes) {
        const std::int64_t block = dtype_info(type).block_size;
        for (OutputType out : {OutputType::F32, OutputType::F16, OutputType::BF16}) {
            // A large tensor (several blocks of threads, every block position) and a small one whose
            // element count is not a multiple of the 256-thread block (the grid's tail).
            check_bit_exact(type, out, 61, 1536);
            check_bit_exact(type, out, 3, block == 256 ? 256 : 288);
        }
    }
}

TEST(CudaDequantize, ZeroElementsIsANoOp) {
    // Returns before touching the device, so it runs everywhere.
    EXPECT_NO_THROW(cuda::dequantize(DType::Q4_1, nullptr, nullptr, OutputType::F32, 0));
}

TEST(CudaDequantize, RejectsBadArgumentsBeforeAnyDeviceWork) {
    // Validation happens on the host before a launch, so these run on machines without a GPU too.
    int dummy = 0;
    EXPECT_THROW(cuda::dequantize(DType::Q4_1, &dummy, &dummy, OutputType::F32, 33), Error);  // not whole blocks
    EXPECT_THROW(cuda::dequantize(DType::Q4_K, &dummy, &dummy, OutputType::F32, 32), Error);  // 256 per block
    EXPECT_THROW(cuda::dequantize(DType::F32, &dummy, &dummy, OutputType::F32, -1), Error);
    EXPECT_THROW(cuda::dequantize(DType::Q4_1, nullptr, &dummy, OutputType::F32, 32), Error);
    try {
        cuda::dequantize(DType::Q5_1, &dummy, &dummy, OutputType::F16, 32);
        ADD_FAILURE() << "Q5_1 has no CUDA dequantizer and must be refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("Q5_1"), std::string::npos) << e.what();
    }
}

TEST(CudaRuntime, FailedCallsNameTheCallAndItsLocation) {
    // An impossible allocation fails in cudaMalloc with or without a GPU (no driver is a failure
    // too), so this runs everywhere.
    try {
        cuda::DeviceBuffer huge(std::size_t{1} << 62);
        ADD_FAILURE() << "a 4 EiB allocation succeeded";
    } catch (const Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("cudaMalloc"), std::string::npos) << message;
        EXPECT_NE(message.find("runtime.cu:"), std::string::npos) << message;
    }
}

TEST(CudaRuntime, DeviceBufferRefusesCopiesOutsideItself) {
    cuda::DeviceBuffer empty;
    int value = 0;
    EXPECT_THROW(empty.upload(&value, sizeof value), Error);
    EXPECT_THROW(empty.download(&value, sizeof value, 1), Error);
}

TEST(CudaRuntime, RoundTripAndPoison) {
    KINDRED_REQUIRE_CUDA_DEVICE();
    const auto info = cuda::device_info();
    std::cout << "[   info   ] device " << info.name << ", sm_" << info.compute_major << info.compute_minor << ", "
              << info.multiprocessors << " SMs, " << (info.global_bytes >> 20) << " MiB, L2 " << (info.l2_bytes >> 20)
              << " MiB\n";
    const auto values = testing::random_floats(1000, fresh_seed());
    auto buffer = testing::to_device(values);
    EXPECT_EQ(testing::from_device<float>(buffer, values.size()), values);
    buffer.fill_bytes(0xFF);
    EXPECT_EQ(testing::count_non_finite(testing::from_device<float>(buffer, values.size())), values.size());
    // Moving transfers ownership; the moved-from buffer is empty.
    cuda::DeviceBuffer moved = std::move(buffer);
    EXPECT_EQ(buffer.data(), nullptr);
    EXPECT_EQ(moved.bytes(), values.size() * sizeof(float));
}

}  // namespace
}  // namespace kindred
