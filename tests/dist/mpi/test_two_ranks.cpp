// tests/dist/mpi/test_two_ranks.cpp — the MPI backend with 2 ranks (ctest runs it under mpirun).
// Both ranks run every test in the same order, so their collectives pair up.
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/communicator.h"

namespace kindred::dist {
namespace {

std::unique_ptr<Communicator> join() {
    const LaunchInfo launch = detect_launch();
    EXPECT_EQ(launch.launcher, Launcher::OpenMpi);
    EXPECT_EQ(launch.world_size, 2);
    CommunicatorOptions options;
    options.timeout_s = 30.0;
    auto communicator = connect(launch, options);
    EXPECT_EQ(communicator->backend(), "mpi");
    return communicator;
}

TEST(TwoRanks, AllReduceSumsFloatsAndDoublesInPlace) {
    auto comm = join();
    std::vector<float> floats(1000);
    std::iota(floats.begin(), floats.end(), static_cast<float>(comm->rank()));
    comm->all_reduce_sum(floats);
    for (std::size_t i = 0; i < floats.size(); ++i) EXPECT_EQ(floats[i], static_cast<float>(2 * i + 1)) << i;
    std::vector<double> doubles = {comm->rank() == 0 ? 0.25 : 0.5, 1e300};
    comm->all_reduce_sum(doubles);
    EXPECT_EQ(doubles[0], 0.75);
    EXPECT_EQ(doubles[1], 2e300);
    comm->all_reduce_sum(std::span<float>());  // nothing to do is fine
}

TEST(TwoRanks, BroadcastCopiesTheRootsBytes) {
    auto comm = join();
    for (int root : {0, 1}) {
        std::vector<std::uint8_t> bytes(300, static_cast<std::uint8_t>(comm->rank() == root ? 7 : 0));
        comm->broadcast(bytes, root);
        EXPECT_EQ(bytes, std::vector<std::uint8_t>(300, 7));
    }
    std::vector<std::uint8_t> one(1);
    EXPECT_THROW(comm->broadcast(one, 2), Error);
    comm->barrier();
}

TEST(TwoRanks, RequireSamePassesOnAgreementAndNamesTheRanksThatDiffer) {
    auto comm = join();
    comm->require_same("the recipe", "sha256:abc");
    try {
        comm->require_same("the model file", comm->rank() == 0 ? "sha256:abc" : "sha256:a-longer-other-digest");
        FAIL() << "different values were accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("ranks disagree on the model file: rank 1 differs from rank 0"), std::string::npos) << message;
    }
}

}  // namespace
}  // namespace kindred::dist

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
