// dist/backends.h — internal to dist/: the constructors of the multi-process backends, each
// compiled only when its library is found (dist/CMakeLists.txt), and the deadline loop they share.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace kindred::dist {

#ifdef KINDRED_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch, const CommunicatorOptions& options);
#endif
#ifdef KINDRED_HAVE_NCCL
// True when a CUDA device is visible to this process.
bool nccl_usable();
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const CommunicatorOptions& options);
#endif

// Polls `finished` until it returns true, sleeping a little longer each time (up to 1 ms, so a
// waiting rank does not steal a core from the computing ones); throws Error "<what> did not
// finish within T s ..." naming `rank` once `timeout_s` has passed.
void wait_until(const std::function<bool()>& finished, double timeout_s, const std::string& what, int rank, int size);

}  // namespace kindred::dist
