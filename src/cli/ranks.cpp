// cli/ranks.cpp — see ranks.h.
#include "cli/ranks.h"

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "core/thread_pool.h"

namespace kindred::cli {
namespace {

// Ranks sharing a host share its cores: without --threads each takes its part of them.
void set_threads(const RankOptions& options, const dist::LaunchInfo& launch) {
    apply_threads_flag(options.threads);
    if (options.threads == 0 && launch.local_size > 1) {
        set_thread_count(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / launch.local_size));
    }
}

}  // namespace

void apply_threads_flag(int threads) {
    if (threads < 0) fail("--threads must be >= 0, got {}", threads);
    if (threads > 0) set_thread_count(threads);
}

void add_rank_options(CLI::App& command, RankOptions& options) {
    command.add_option("--threads", options.threads, "CPU threads (0 = KINDRED_THREADS or every core)")
        ->capture_default_str();
    command.add_option("--collective-timeout", options.collective_timeout_s,
                       "Seconds a data-parallel rank waits for the others in one collective before stopping the job")
        ->capture_default_str();
}

void run_on_ranks(const RankOptions& options, const std::function<void(dist::Communicator&)>& body) {
    const dist::LaunchInfo launch = dist::detect_launch();
    set_threads(options, launch);
    dist::CommunicatorOptions communicator_options;
    communicator_options.timeout_s = options.collective_timeout_s;
    const auto communicator = dist::connect(launch, communicator_options);
    try {
        body(*communicator);
    } catch (const Error& error) {
        if (communicator->size() > 1) communicator->abort_job(error.what());
        throw;
    }
}

}  // namespace kindred::cli
