// dist/launch.cpp — reading the launchers' variables (see launch.h).
#include "dist/launch.h"

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "core/error.h"

namespace kindred::dist {
namespace {

std::optional<long> read_integer(const std::function<const char*(const char*)>& getenv, const char* name) {
    const char* text = getenv(name);
    if (text == nullptr || *text == '\0') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 0 || value > (1L << 24))
        fail("environment variable {}='{}' is not a whole number of ranks", name, text);
    return value;
}

struct Names {
    Launcher launcher;
    const char* rank;
    const char* size;
    const char* local_rank;
    const char* local_size;  // null: the launcher has no such variable
};

}  // namespace

std::string launcher_name(Launcher launcher) {
    switch (launcher) {
        case Launcher::None: return "none";
        case Launcher::OpenMpi: return "Open MPI";
        case Launcher::Pmi: return "PMI (MPICH/Intel MPI)";
        case Launcher::Slurm: return "Slurm srun";
        case Launcher::Torchrun: return "torchrun";
    }
    return "?";
}

LaunchInfo detect_launch(const std::function<const char*(const char*)>& getenv) {
    const std::function<const char*(const char*)> lookup = getenv ? getenv : [](const char* name) { return std::getenv(name); };
    static constexpr Names kLaunchers[] = {
        {Launcher::OpenMpi, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
        {Launcher::Pmi, "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
        {Launcher::Slurm, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr},
        {Launcher::Torchrun, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    };
    for (const Names& names : kLaunchers) {
        const std::optional<long> rank = read_integer(lookup, names.rank);
        if (!rank) continue;
        const std::optional<long> size = read_integer(lookup, names.size);
        if (!size) fail("environment variable {} is set but {} is not", names.rank, names.size);
        if (*size < 1) fail("environment variable {}={} must be at least 1", names.size, *size);
        if (*rank >= *size) fail("environment variable {}={} is outside the job of {}={}", names.rank, *rank, names.size, *size);
        LaunchInfo info;
        info.launcher = names.launcher;
        info.rank = static_cast<int>(*rank);
        info.world_size = static_cast<int>(*size);
        info.local_rank = static_cast<int>(read_integer(lookup, names.local_rank).value_or(0));
        if (names.local_size != nullptr) info.local_size = static_cast<int>(read_integer(lookup, names.local_size).value_or(0));
        if (names.launcher == Launcher::Torchrun) {
            const char* addr = lookup("MASTER_ADDR");
            info.master_addr = addr != nullptr ? addr : "";
            info.master_port = static_cast<int>(read_integer(lookup, "MASTER_PORT").value_or(0));
        }
        return info;
    }
    return {};
}

}  // namespace kindred::dist
