// cli/ranks.h — how a training command runs under a data-parallel launch (mpirun, srun, or
// torchrun on GPUs; docs/distributed.md) or as one process: the thread count each rank takes, the
// communicator, and ending the whole job when one rank fails.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "dist/communicator.h"

namespace kindred::cli {

struct RankOptions {
    int threads = 0;  // 0: KINDRED_THREADS or the host's cores shared among its ranks
    double collective_timeout_s = 600.0;
};

// A command's --threads: Error when negative; > 0 sets the pool's size, 0 leaves the default
// (KINDRED_THREADS or every core).
void apply_threads_flag(int threads);

// --threads and --collective-timeout on `command`.
void add_rank_options(CLI::App& command, RankOptions& options);

// Detects the launch, sets the threads, connects the ranks and calls `body` on this one; an Error
// on any rank ends the job (the others would wait in their next collective) and is rethrown.
void run_on_ranks(const RankOptions& options, const std::function<void(dist::Communicator&)>& body);

}  // namespace kindred::cli
