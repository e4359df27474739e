// tests/kernels_cuda/cuda_test_util.h — what every CUDA test shares: skipping without a GPU, fresh
// seeds, device round trips, and the relative error the tolerances are stated in.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda_backend.h"

// Tests that touch the device call this first: no GPU (no driver, or cudaGetDeviceCount gives 0)
// is a skip, not a failure, so CI machines without one stay green.
#define KINDRED_REQUIRE_CUDA_DEVICE()                                               \
    do {                                                                            \
        if (::kindred::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
    } while (0)

namespace kindred::testing {

// A new seed per check (fast and slow versions must agree on any valid input); tests print it
// through SCOPED_TRACE so a failure can be replayed.
inline std::uint32_t fresh_seed() { return std::random_device{}(); }

template <typename T>
cuda::DeviceBuffer to_device(const std::vector<T>& host) {
    cuda::DeviceBuffer buffer(host.size() * sizeof(T));
    buffer.upload(host.data(), host.size() * sizeof(T));
    return buffer;
}

template <typename T>
std::vector<T> from_device(const cuda::DeviceBuffer& buffer, std::size_t count) {
    std::vector<T> host(count);
    buffer.download(host.data(), count * sizeof(T));
    return host;
}

// ‖got − want‖₂ / ‖want‖₂ in double; NaN anywhere in `got` (an unwritten, poisoned element) gives
// NaN, which fails every `<=` comparison.
template <typename A, typename B>
double relative_error(const std::vector<A>& got, const std::vector<B>& want) {
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
        diff += d * d;
        norm += static_cast<double>(want[i]) * static_cast<double>(want[i]);
    }
    return std::sqrt(diff) / std::sqrt(norm);
}

inline std::size_t count_non_finite(const std::vector<float>& values) {
    std::size_t count = 0;
    for (float v : values) count += std::isfinite(v) ? 0 : 1;
    return count;
}

}  // namespace kindred::testing
