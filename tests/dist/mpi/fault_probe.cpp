// tests/dist/mpi/fault_probe.cpp — run under mpirun with 2 ranks by ctest, which matches its
// output. "kill": rank 1 dies by SIGKILL while rank 0 waits in an all-reduce; the launcher must
// stop rank 0 and name rank 1. "stall": rank 1 stays alive but never joins; rank 0's all-reduce
// must time out (1 s) with an Error naming it, and abort_job must end the whole job.
#include <csignal>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"

int main(int argc, char** argv) {
    using namespace kindred::dist;
    if (argc != 2) return 2;
    CommunicatorOptions options;
    options.timeout_s = std::strcmp(argv[1], "stall") == 0 ? 1.0 : 60.0;
    auto communicator = connect(detect_launch(), options);
    float value = 1.0f;
    if (communicator->rank() == 1) {
        if (std::strcmp(argv[1], "kill") == 0) std::raise(SIGKILL);
        std::this_thread::sleep_for(std::chrono::seconds(30));  // far past rank 0's timeout
        return 3;
    }
    try {
        communicator->all_reduce_sum(std::span<float>(&value, 1));
    } catch (const kindred::Error& error) {
        communicator->abort_job(error.what());
    }
    return 4;  // neither case may get here
}
