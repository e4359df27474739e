// dist/launch.h — how this process was started: alone, or as one rank of a job launched by
// Open MPI's mpirun, MPICH/Intel MPI (PMI), Slurm's srun, or torchrun (and anything that sets
// torchrun's variables). Read from the environment only; nothing is connected here.
//
// Variables read, first match wins:
//   Open MPI  OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE
//   PMI       PMI_RANK / PMI_SIZE (MPICH, Intel MPI), MPI_LOCALRANKID / MPI_LOCALNRANKS
//   Slurm     SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID (srun; a batch script's own shell has
//             no SLURM_PROCID and counts as alone)
//   torchrun  RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE, with MASTER_ADDR / MASTER_PORT for rendezvous
// A value that is not a whole number, a rank outside [0, size) or a size below 1 is an Error
// naming the variable.
#pragma once

#include <functional>
#include <string>

namespace kindred::dist {

enum class Launcher { None, OpenMpi, Pmi, Slurm, Torchrun };

struct LaunchInfo {
    Launcher launcher = Launcher::None;
    int rank = 0;
    int world_size = 1;
    int local_rank = 0;
    int local_size = 0;       // ranks on this host; 0 when the launcher does not say
    std::string master_addr;  // torchrun only
    int master_port = 0;      // torchrun only
    // Whether the launcher speaks MPI's process-management protocol, so MPI_Init can join the job.
    bool mpi_capable() const { return launcher == Launcher::OpenMpi || launcher == Launcher::Pmi || launcher == Launcher::Slurm; }
};

std::string launcher_name(Launcher launcher);

// `getenv` is replaceable for tests (default: the process environment).
LaunchInfo detect_launch(const std::function<const char*(const char*)>& getenv = nullptr);

}  // namespace kindred::dist
