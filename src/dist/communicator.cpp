// dist/communicator.cpp — the single-process backend, backend choice, the shared checks.
#include "dist/communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "dist/backends.h"

namespace kindred::dist {
namespace {

class SingleProcess final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    std::string backend() const override { return "single"; }
    void all_reduce_sum(std::span<float>) override {}
    void all_reduce_sum(std::span<double>) override {}
    void broadcast(std::span<std::uint8_t>, int root) override {
        if (root != 0) fail("broadcast: root {} is not a rank of a single-process job", root);
    }
    void barrier() override {}
    [[noreturn]] void abort_job(const std::string& message) override {
        std::fprintf(stderr, "kindred: error: %s\n", message.c_str());
        std::exit(1);
    }
};

}  // namespace

void wait_until(const std::function<bool()>& finished, double timeout_s, const std::string& what, int rank, int size) {
    const auto start = std::chrono::steady_clock::now();
    auto pause = std::chrono::microseconds(1);
    while (!finished()) {
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s)
            fail("rank {} of {}: {} did not finish within {:g} s: another rank has stopped or is stuck", rank, size, what,
                 timeout_s);
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
}

void Communicator::require_same(const std::string& what, const std::string& value) {
    // Root's value travels to everyone (its length first); each rank compares, and one sum tells
    // every rank which ranks differ.
    std::uint64_t length = value.size();
    broadcast({reinterpret_cast<std::uint8_t*>(&length), sizeof(length)}, 0);
    std::vector<std::uint8_t> root_value(static_cast<std::size_t>(length));
    if (is_root()) std::memcpy(root_value.data(), value.data(), value.size());
    broadcast(root_value, 0);
    const bool same = root_value.size() == value.size() && std::equal(value.begin(), value.end(), root_value.begin());
    std::vector<double> differs(static_cast<std::size_t>(size()), 0.0);
    differs[static_cast<std::size_t>(rank())] = same ? 0.0 : 1.0;
    all_reduce_sum(differs);
    std::vector<int> ranks;
    for (int r = 0; r < size(); ++r) {
        if (differs[static_cast<std::size_t>(r)] != 0.0) ranks.push_back(r);
    }
    if (ranks.empty()) return;
    std::string shown = value.size() > 80 ? value.substr(0, 80) + "..." : value;
    fail("ranks disagree on {}: rank{} {} differ{} from rank 0 (this is rank {}, with '{}')", what,
         ranks.size() == 1 ? "" : "s", fmt::join(ranks, ", "), ranks.size() == 1 ? "s" : "", rank(), shown);
}

bool built_with_mpi() {
#ifdef KINDRED_HAVE_MPI
    return true;
#else
    return false;
#endif
}

bool built_with_nccl() {
#ifdef KINDRED_HAVE_NCCL
    return true;
#else
    return false;
#endif
}

std::unique_ptr<Communicator> connect(const LaunchInfo& launch, const CommunicatorOptions& options) {
    using Backend = CommunicatorOptions::Backend;
    if (options.timeout_s <= 0) fail("the collectives' timeout must be positive, got {:g} s", options.timeout_s);
    if (launch.world_size == 1) return std::make_unique<SingleProcess>();
    const std::string job = fmt::format("launched as rank {} of {} by {}", launch.rank, launch.world_size,
                                        launcher_name(launch.launcher));
#ifdef KINDRED_HAVE_NCCL
    if (options.backend == Backend::Nccl || (options.backend == Backend::Auto && nccl_usable()))
        return make_nccl_communicator(launch, options);
#else
    if (options.backend == Backend::Nccl) fail("{}: the NCCL backend needs a CUDA build of kindred (nvcc and NCCL found at configure time)", job);
#endif
    if (!launch.mpi_capable())
        fail("{}: without a GPU, ranks connect through MPI; start the job with mpirun or srun instead{}", job,
             built_with_mpi() ? "" : " (and rebuild with MPI: scripts/install-deps installs libopenmpi-dev)");
#ifdef KINDRED_HAVE_MPI
    return make_mpi_communicator(launch, options);
#else
    fail("{}, but this build of kindred has no MPI support: install libopenmpi-dev (scripts/install-deps) and rebuild, "
         "or run a single process",
         job);
#endif
}

}  // namespace kindred::dist
