// dist/communicator.h in one process: the single-process backend, the backend choice's errors,
// and the TCP rendezvous (dist/rendezvous.h) between threads on loopback.
#include "dist/communicator.h"

#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/rendezvous.h"
#include "error_of.h"
#include "local_http_server.h"

namespace kindred::dist {
namespace {

using kindred::testing::error_of;

TEST(SingleProcess, CollectivesLeaveValuesAsTheyAre) {
    auto comm = connect(LaunchInfo{});
    EXPECT_EQ(comm->backend(), "single");
    EXPECT_EQ(comm->size(), 1);
    EXPECT_TRUE(comm->is_root());
    std::vector<float> values = {1.5f, -2.0f};
    comm->all_reduce_sum(values);
    EXPECT_EQ(values, (std::vector<float>{1.5f, -2.0f}));
    std::vector<std::uint8_t> bytes = {1, 2};
    comm->broadcast(bytes, 0);
    EXPECT_EQ(bytes, (std::vector<std::uint8_t>{1, 2}));
    EXPECT_THROW(comm->broadcast(bytes, 1), Error);
    comm->barrier();
    comm->require_same("the recipe", "anything");
}

TEST(Connect, TorchrunWithoutAGpuAsksForAnMpiLauncher) {
    LaunchInfo launch;
    launch.launcher = Launcher::Torchrun;
    launch.world_size = 2;
    if (built_with_nccl()) GTEST_SKIP() << "a CUDA build would try NCCL here";
    const std::string message = error_of([&] { connect(launch); });
    EXPECT_NE(message.find("launched as rank 0 of 2 by torchrun"), std::string::npos) << message;
    EXPECT_NE(message.find("mpirun or srun"), std::string::npos) << message;
}

TEST(Connect, AskingForNcclInACpuBuildIsAnError) {
    if (built_with_nccl()) GTEST_SKIP() << "this build has NCCL";
    LaunchInfo launch;
    launch.launcher = Launcher::OpenMpi;
    launch.world_size = 2;
    CommunicatorOptions options;
    options.backend = CommunicatorOptions::Backend::Nccl;
    EXPECT_NE(error_of([&] { connect(launch, options); }).find("needs a CUDA build"), std::string::npos);
    options.timeout_s = 0;
    EXPECT_NE(error_of([&] { connect(launch, options); }).find("timeout must be positive"), std::string::npos);
}

TEST(Connect, AnMpiLaunchOfABuildWithoutMpiSaysWhatToInstall) {
    if (built_with_mpi() || built_with_nccl()) GTEST_SKIP() << "this build can join an MPI launch";
    LaunchInfo launch;
    launch.launcher = Launcher::Slurm;
    launch.rank = 1;
    launch.world_size = 2;
    const std::string message = error_of([&] { connect(launch); });
    EXPECT_NE(message.find("launched as rank 1 of 2 by Slurm srun, but this build of kindred has no MPI support"),
              std::string::npos) << message;
    EXPECT_NE(message.find("libopenmpi-dev"), std::string::npos) << message;
}

// A free loopback port: bind one, note it, let it go.
int free_port() {
    kindred::testing::LocalHttpServer probe;
    probe.start();
    const int port = probe.port();
    probe.stop();
    return port;
}

TEST(TcpRendezvous, RankZerosBytesReachEveryRank) {
    const int port = free_port();
    const std::vector<std::uint8_t> id = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 42};
    std::vector<std::future<std::vector<std::uint8_t>>> others;
    for (int rank = 1; rank < 4; ++rank) {  // the others start first and wait for rank 0
        others.push_back(std::async(std::launch::async, [=] {
            return tcp_rendezvous("127.0.0.1", port, rank, 4, {}, id.size(), 10.0);
        }));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(tcp_rendezvous("127.0.0.1", port, 0, 4, id, id.size(), 10.0), id);
    for (auto& other : others) EXPECT_EQ(other.get(), id);
}

TEST(TcpRendezvous, MissingRanksAndAbsentRootTimeOutWithAnError) {
    const int port = free_port();
    const std::vector<std::uint8_t> id(16, 1);
    auto one = std::async(std::launch::async, [&] { return tcp_rendezvous("127.0.0.1", port, 1, 3, {}, id.size(), 5.0); });
    std::string message = error_of([&] { tcp_rendezvous("127.0.0.1", port, 0, 3, id, id.size(), 0.5); });
    EXPECT_NE(message.find("rank 0 of 3: rendezvous at 127.0.0.1:"), std::string::npos) << message;
    EXPECT_NE(message.find("only 1 of the 2 other ranks arrived"), std::string::npos) << message;
    EXPECT_EQ(one.get(), id);  // the one that came got its bytes before rank 0 gave up

    message = error_of([&] { tcp_rendezvous("127.0.0.1", free_port(), 2, 3, {}, 16, 0.3); });
    EXPECT_NE(message.find("rank 0 did not accept a connection"), std::string::npos) << message;
    EXPECT_NE(error_of([&] { tcp_rendezvous("", 0, 1, 2, {}, 16, 1.0); }).find("MASTER_ADDR and MASTER_PORT"), std::string::npos);
}

}  // namespace
}  // namespace kindred::dist
