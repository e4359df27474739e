// dist/communicator.h — the collectives data-parallel training needs, behind one interface with
// three backends: a single process (no-ops), MPI (CPU builds, Open MPI from Debian; also under
// Slurm's srun) and NCCL (CUDA builds; rendezvous through MPI or torchrun's MASTER_ADDR/PORT).
// The training loop holds a Communicator and never knows which backend runs; kernels never see one.
//
// Every collective is bounded in time: when a peer has died or hangs, the call throws Error
// naming this rank and the operation after `timeout_s` instead of blocking forever. A launcher
// such as mpirun also notices a dead rank and stops the job; the timeout covers the cases it
// does not (a rank stuck in a loop, a launcher without that policy). After an Error, call
// abort_job(): it prints the message with this rank's number and ends every rank of the job
// (MPI_Abort / ncclCommAbort), since the survivors could otherwise wait in a collective.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dist/launch.h"

namespace kindred::dist {

struct CommunicatorOptions {
    double timeout_s = 600.0;  // per collective
    enum class Backend { Auto, Mpi, Nccl } backend = Backend::Auto;  // Auto: NCCL when built and a GPU is visible, else MPI
};

class Communicator {
public:
    virtual ~Communicator() = default;

    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual std::string backend() const = 0;  // "single", "mpi", "nccl"

    // In-place element-wise sums over all ranks; every rank passes the same length (Error
    // otherwise, where the backend can tell).
    virtual void all_reduce_sum(std::span<float> values) = 0;
    virtual void all_reduce_sum(std::span<double> values) = 0;
    // Root's bytes overwrite everyone's; every rank passes the same length.
    virtual void broadcast(std::span<std::uint8_t> bytes, int root) = 0;
    virtual void barrier() = 0;

    // Stops the whole job after an Error on this rank (see the top); does not return.
    [[noreturn]] virtual void abort_job(const std::string& message) = 0;

    // Throws Error on every rank unless all ranks pass the same `value` (a digest of the recipe,
    // of the model file...); the message names `what` and which ranks differ from rank 0.
    void require_same(const std::string& what, const std::string& value);
    bool is_root() const { return rank() == 0; }
};

// The communicator for this process's launch (see launch.h): the single-process one when
// launched alone; MPI or NCCL otherwise. Throws Error when the launch asks for several ranks and
// this build cannot join them (no MPI, or a torchrun launch without NCCL), naming what to
// install or how to launch instead.
std::unique_ptr<Communicator> connect(const LaunchInfo& launch, const CommunicatorOptions& options = {});

// Which backends this build has, for --version/--verbose and error messages.
bool built_with_mpi();
bool built_with_nccl();

}  // namespace kindred::dist
