// dist/rendezvous.h — torchrun-style rendezvous without MPI: rank 0 listens on MASTER_ADDR:
// MASTER_PORT and hands its bytes (NCCL's unique id) to every other rank, which connects,
// retrying until the deadline (rank 0 may start later than the others). Everything is bounded:
// a rank that never shows up makes rank 0 fail with an Error naming how many arrived.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kindred::dist {

// On rank 0 returns `root_bytes` after all other ranks received them; elsewhere returns the
// bytes received (their length must be `size`). Error names the address and this rank.
std::vector<std::uint8_t> tcp_rendezvous(const std::string& master_addr, int master_port, int rank, int world_size,
                                         std::span<const std::uint8_t> root_bytes, std::size_t size, double timeout_s);

}  // namespace kindred::dist
