// kernels/cuda/runtime.cu — device discovery, DeviceBuffer, synchronize and the error reporting
// behind check.cuh.
#include <string>
#include <utility>

#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda_backend.h"

namespace kindred::cuda {
namespace detail {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
    // The runtime also keeps a failed call's status as its "last error"; clear it (errors that are
    // not sticky) so that the next launch check does not report this failure a second time.
    (void)cudaGetLastError();
    throw Error(std::string("CUDA error at ") + file + ":" + std::to_string(line) + ": " + call + " failed: " +
                cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
    throw Error(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) + ": " + call + " failed: " +
                cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

}  // namespace detail

int device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no driver" status so later calls start clean
        return 0;
    }
    return count;
}

DeviceInfo device_info() {
    if (device_count() == 0) throw Error("CUDA: no device is available (cudaGetDeviceCount gave none)");
    cudaDeviceProp prop{};
    KINDRED_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    DeviceInfo info;
    info.name = prop.name;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    info.global_bytes = prop.totalGlobalMem;
    info.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
    return info;
}

void synchronize() {
    KINDRED_CUDA_CHECK(cudaDeviceSynchronize());
    KINDRED_CUDA_CHECK(cudaGetLastError());
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes > 0) KINDRED_CUDA_CHECK(cudaMalloc(&data_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
    // No throw from a destructor: a failed free here means the context is already broken, and the
    // call that broke it has reported that.
    if (data_ != nullptr) (void)cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
        if (data_ != nullptr) (void)cudaFree(data_);
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
}

namespace {
void check_range(std::size_t offset, std::size_t bytes, std::size_t size, const char* what) {
    if (offset > size || bytes > size - offset)
        throw Error(std::string("DeviceBuffer::") + what + ": bytes [" + std::to_string(offset) + ", " +
                    std::to_string(offset) + " + " + std::to_string(bytes) + ") exceed the buffer's " +
                    std::to_string(size));
}
}  // namespace

void DeviceBuffer::upload(const void* host, std::size_t bytes, std::size_t offset) {
    check_range(offset, bytes, bytes_, "upload");
    if (bytes == 0) return;
    KINDRED_CUDA_CHECK(cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, std::size_t bytes, std::size_t offset) const {
    check_range(offset, bytes, bytes_, "download");
    if (bytes == 0) return;
    KINDRED_CUDA_CHECK(cudaMemcpy(host, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost));
}

void DeviceBuffer::fill_bytes(std::uint8_t value) {
    if (bytes_ == 0) return;
    KINDRED_CUDA_CHECK(cudaMemset(data_, value, bytes_));
}

}  // namespace kindred::cuda
