// dist/mpi/mpi_communicator.cpp — the MPI backend (CPU builds): nonblocking collectives on
// MPI_COMM_WORLD polled against the deadline, errors returned instead of aborting, so every
// failure becomes an Error naming the operation and this rank.
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "dist/backends.h"

namespace kindred::dist {
namespace {

// MPI lives as long as the process (it cannot start again once finalised), so communicators
// come and go freely; it is finalised at exit unless abort_job ended the job first.
void initialise_once(const LaunchInfo& launch) {
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    if (finalised) fail("rank {} of {}: MPI was already finalised in this process", launch.rank, launch.world_size);
    if (initialised) return;
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        fail("rank {} of {}: MPI_Init_thread failed", launch.rank, launch.world_size);
    std::atexit([] {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Finalize();
    });
}

// MPI counts are ints: larger buffers go in slices of this many elements.
constexpr std::size_t kMaxSlice = std::size_t{1} << 28;

class Mpi final : public Communicator {
public:
    Mpi(const LaunchInfo& launch, const CommunicatorOptions& options) : timeout_s_(options.timeout_s) {
        initialise_once(launch);
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        if (rank_ != launch.rank || size_ != launch.world_size)
            fail("MPI says rank {} of {}, but {} said rank {} of {}", rank_, size_, launcher_name(launch.launcher),
                 launch.rank, launch.world_size);
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string backend() const override { return "mpi"; }

    void all_reduce_sum(std::span<float> values) override { reduce(values.data(), values.size(), MPI_FLOAT, "all-reduce"); }
    void all_reduce_sum(std::span<double> values) override { reduce(values.data(), values.size(), MPI_DOUBLE, "all-reduce"); }

    void broadcast(std::span<std::uint8_t> bytes, int root) override {
        if (root < 0 || root >= size_) fail("rank {} of {}: broadcast from rank {}, which is not in the job", rank_, size_, root);
        for (std::size_t at = 0; at < bytes.size(); at += kMaxSlice) {
            const int count = static_cast<int>(std::min(kMaxSlice, bytes.size() - at));
            MPI_Request request;
            check(MPI_Ibcast(bytes.data() + at, count, MPI_BYTE, root, MPI_COMM_WORLD, &request), "broadcast");
            finish(request, "broadcast");
        }
    }

    void barrier() override {
        MPI_Request request;
        check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "barrier");
        finish(request, "barrier");
    }

    [[noreturn]] void abort_job(const std::string& message) override {
        std::fprintf(stderr, "kindred: error (rank %d of %d): %s\n", rank_, size_, message.c_str());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
        std::exit(1);  // MPI_Abort does not return; this is for an MPI that lets it
    }

private:
    void reduce(void* data, std::size_t count, MPI_Datatype type, const char* what) {
        const std::size_t element = type == MPI_FLOAT ? sizeof(float) : sizeof(double);
        for (std::size_t at = 0; at < count; at += kMaxSlice) {
            const int slice = static_cast<int>(std::min(kMaxSlice, count - at));
            MPI_Request request;
            check(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(data) + at * element, slice, type, MPI_SUM, MPI_COMM_WORLD,
                                 &request),
                  what);
            finish(request, what);
        }
    }

    void finish(MPI_Request& request, const char* what) {
        int status = MPI_SUCCESS;
        wait_until(
            [&] {
                int done = 0;
                status = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
                return status != MPI_SUCCESS || done != 0;
            },
            timeout_s_, what, rank_, size_);
        check(status, what);
    }

    void check(int status, const char* what) const {
        if (status == MPI_SUCCESS) return;
        char text[MPI_MAX_ERROR_STRING];
        int length = 0;
        MPI_Error_string(status, text, &length);
        fail("rank {} of {}: MPI {} failed: {}", rank_, size_, what, std::string(text, static_cast<std::size_t>(length)));
    }

    double timeout_s_;
    int rank_ = 0;
    int size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch, const CommunicatorOptions& options) {
    return std::make_unique<Mpi>(launch, options);
}

}  // namespace kindred::dist
