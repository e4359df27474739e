// dist/launch.h: which launcher started the process, from its variables.
#include "dist/launch.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace kindred::dist {
namespace {

LaunchInfo launch_with(const std::map<std::string, std::string>& variables) {
    return detect_launch([&](const char* name) -> const char* {
        const auto it = variables.find(name);
        return it == variables.end() ? nullptr : it->second.c_str();
    });
}

std::string error_of(const std::map<std::string, std::string>& variables) {
    try {
        launch_with(variables);
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

TEST(Launch, AloneWithoutAnyLauncherVariables) {
    const LaunchInfo info = launch_with({{"MASTER_ADDR", "host"}});  // a stray variable alone means nothing
    EXPECT_EQ(info.launcher, Launcher::None);
    EXPECT_EQ(info.world_size, 1);
    EXPECT_EQ(info.rank, 0);
}

TEST(Launch, ReadsEachLaunchersVariables) {
    LaunchInfo info = launch_with({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
    EXPECT_EQ(info.launcher, Launcher::OpenMpi);
    EXPECT_EQ(info.rank, 1);
    EXPECT_EQ(info.world_size, 4);
    EXPECT_EQ(info.local_rank, 1);
    EXPECT_TRUE(info.mpi_capable());

    info = launch_with({{"PMI_RANK", "0"}, {"PMI_SIZE", "2"}});
    EXPECT_EQ(info.launcher, Launcher::Pmi);
    EXPECT_EQ(info.local_rank, 0);

    info = launch_with({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "3"}});
    EXPECT_EQ(info.launcher, Launcher::Slurm);
    EXPECT_EQ(info.rank, 3);
    EXPECT_TRUE(info.mpi_capable());

    info = launch_with({{"RANK", "2"}, {"WORLD_SIZE", "3"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}});
    EXPECT_EQ(info.launcher, Launcher::Torchrun);
    EXPECT_EQ(info.master_addr, "10.0.0.1");
    EXPECT_EQ(info.master_port, 29500);
    EXPECT_FALSE(info.mpi_capable());
}

TEST(Launch, OpenMpiWinsOverTheSlurmAllocationItRunsIn) {
    const LaunchInfo info = launch_with({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"},
                                         {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    EXPECT_EQ(info.launcher, Launcher::OpenMpi);
    EXPECT_EQ(info.world_size, 2);
}

TEST(Launch, BadValuesAreErrorsNamingTheVariable) {
    EXPECT_NE(error_of({{"RANK", "one"}, {"WORLD_SIZE", "2"}}).find("RANK='one'"), std::string::npos);
    EXPECT_NE(error_of({{"RANK", "1"}}).find("RANK is set but WORLD_SIZE is not"), std::string::npos);
    EXPECT_NE(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("RANK=2 is outside the job of WORLD_SIZE=2"), std::string::npos);
    EXPECT_NE(error_of({{"PMI_RANK", "0"}, {"PMI_SIZE", "0"}}).find("PMI_SIZE=0 must be at least 1"), std::string::npos);
    EXPECT_NE(error_of({{"SLURM_PROCID", "-1"}, {"SLURM_NTASKS", "2"}}).find("SLURM_PROCID"), std::string::npos);
    EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "80x"}}).find("MASTER_PORT"), std::string::npos);
}

}  // namespace
}  // namespace kindred::dist
