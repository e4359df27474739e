// dist/nccl/nccl_communicator.cpp — the NCCL backend (CUDA builds). Host buffers go through one
// device buffer per job (grown as needed): copy in, NCCL collective, copy out, all on one stream
// polled against the deadline, with NCCL's asynchronous errors checked while waiting. The
// communicator is created non-blocking, so a peer that never joins is a timeout, not a hang.
// Rendezvous: NCCL's unique id travels from rank 0 over MPI when the launcher speaks it (mpirun,
// srun) and over TCP otherwise (torchrun's MASTER_ADDR/MASTER_PORT, dist/rendezvous.h).
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "dist/backends.h"
#include "dist/rendezvous.h"

namespace kindred::dist {
namespace {

class Nccl final : public Communicator {
public:
    Nccl(const LaunchInfo& launch, const CommunicatorOptions& options)
        : rank_(launch.rank), size_(launch.world_size), timeout_s_(options.timeout_s) {
        int devices = 0;
        cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
        if (devices < 1) fail("rank {} of {}: the NCCL backend needs a CUDA device, and none is visible", rank_, size_);
        cuda(cudaSetDevice(launch.local_rank % devices), "cudaSetDevice");
        cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");

        ncclUniqueId id{};
        if (rank_ == 0) nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
        const std::span<const std::uint8_t> id_bytes(reinterpret_cast<const std::uint8_t*>(&id), sizeof(id));
        std::vector<std::uint8_t> shared;
#ifdef KINDRED_HAVE_MPI
        if (launch.mpi_capable()) {
            bootstrap_ = make_mpi_communicator(launch, options);
            shared.assign(id_bytes.begin(), id_bytes.end());
            bootstrap_->broadcast(shared, 0);
        }
#endif
        if (shared.empty())
            shared = tcp_rendezvous(launch.master_addr, launch.master_port, rank_, size_, id_bytes, sizeof(id), timeout_s_);
        std::memcpy(&id, shared.data(), sizeof(id));

        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        nccl(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig");
        wait_for_comm("joining the NCCL communicator");
    }

    ~Nccl() override {
        if (comm_ != nullptr) {
            if (failed_) {
                ncclCommAbort(comm_);
            } else {
                ncclCommDestroy(comm_);
            }
        }
        if (device_ != nullptr) cudaFree(device_);
        if (stream_ != nullptr) cudaStreamDestroy(stream_);
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string backend() const override { return "nccl"; }

    void all_reduce_sum(std::span<float> values) override { reduce(values.data(), values.size_bytes(), values.size(), ncclFloat32); }
    void all_reduce_sum(std::span<double> values) override { reduce(values.data(), values.size_bytes(), values.size(), ncclFloat64); }

    void broadcast(std::span<std::uint8_t> bytes, int root) override {
        if (root < 0 || root >= size_) fail("rank {} of {}: broadcast from rank {}, which is not in the job", rank_, size_, root);
        void* device = stage(bytes.data(), bytes.size());
        nccl(ncclBroadcast(device, device, bytes.size(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
        unstage(bytes.data(), bytes.size(), "broadcast");
    }

    void barrier() override {
        float token = 0.0f;
        all_reduce_sum(std::span<float>(&token, 1));
    }

    [[noreturn]] void abort_job(const std::string& message) override {
        if (comm_ != nullptr) ncclCommAbort(comm_);  // peers waiting on us see an error or time out
        if (bootstrap_) bootstrap_->abort_job(message);  // prints, and the MPI launcher stops every rank
        std::fprintf(stderr, "kindred: error (rank %d of %d): %s\n", rank_, size_, message.c_str());
        std::exit(1);
    }

private:
    void reduce(void* host, std::size_t bytes, std::size_t count, ncclDataType_t type) {
        void* device = stage(host, bytes);
        nccl(ncclAllReduce(device, device, count, type, ncclSum, comm_, stream_), "ncclAllReduce");
        unstage(host, bytes, "all-reduce");
    }

    void* stage(const void* host, std::size_t bytes) {
        if (bytes > capacity_) {
            if (device_ != nullptr) cuda(cudaFree(device_), "cudaFree");
            device_ = nullptr;
            cuda(cudaMalloc(&device_, bytes), "cudaMalloc");
            capacity_ = bytes;
        }
        cuda(cudaMemcpyAsync(device_, host, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
        return device_;
    }

    void unstage(void* host, std::size_t bytes, const char* what) {
        cuda(cudaMemcpyAsync(host, device_, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
        try {
            wait_until(
                [&] {
                    ncclResult_t async = ncclSuccess;
                    ncclCommGetAsyncError(comm_, &async);
                    if (async != ncclSuccess && async != ncclInProgress) nccl(async, what);
                    const cudaError_t state = cudaStreamQuery(stream_);
                    if (state != cudaErrorNotReady) cuda(state, what);
                    return state == cudaSuccess;
                },
                timeout_s_, what, rank_, size_);
        } catch (const Error&) {
            failed_ = true;
            throw;
        }
    }

    void wait_for_comm(const char* what) {
        try {
            wait_until(
                [&] {
                    ncclResult_t state = ncclSuccess;
                    nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
                    if (state != ncclSuccess && state != ncclInProgress) nccl(state, what);
                    return state == ncclSuccess;
                },
                timeout_s_, what, rank_, size_);
        } catch (const Error&) {
            failed_ = true;
            throw;
        }
    }

    void cuda(cudaError_t status, const char* what) {
        if (status == cudaSuccess) return;
        failed_ = true;
        fail("rank {} of {}: {} failed: {}", rank_, size_, what, cudaGetErrorString(status));
    }
    void nccl(ncclResult_t status, const char* what) {
        if (status == ncclSuccess || status == ncclInProgress) return;
        failed_ = true;
        fail("rank {} of {}: {} failed: {}", rank_, size_, what, ncclGetErrorString(status));
    }

    int rank_;
    int size_;
    double timeout_s_;
    bool failed_ = false;
    std::unique_ptr<Communicator> bootstrap_;  // MPI, when the launcher speaks it
    cudaStream_t stream_ = nullptr;
    ncclComm_t comm_ = nullptr;
    void* device_ = nullptr;
    std::size_t capacity_ = 0;
};

}  // namespace

bool nccl_usable() {
    int devices = 0;
    return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const CommunicatorOptions& options) {
    return std::make_unique<Nccl>(launch, options);
}

}  // namespace kindred::dist
