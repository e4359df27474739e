// dist/rendezvous.cpp — the TCP exchange of rendezvous.h over POSIX sockets.
#include "dist/rendezvous.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "core/error.h"

namespace kindred::dist {
namespace {

using Clock = std::chrono::steady_clock;

class Socket {
public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    ~Socket() {
        if (fd_ >= 0) ::close(fd_);
    }
    Socket(Socket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    Socket& operator=(Socket&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    int fd() const { return fd_; }

private:
    int fd_;
};

struct AddrDeleter {
    void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

std::unique_ptr<addrinfo, AddrDeleter> resolve(const std::string& host, int port, bool passive, const std::string& where) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (passive) hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int status = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (status != 0) fail("{}: cannot resolve the address: {}", where, gai_strerror(status));
    return std::unique_ptr<addrinfo, AddrDeleter>(found);
}

double remaining_s(Clock::time_point deadline) {
    return std::chrono::duration<double>(deadline - Clock::now()).count();
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const double left = remaining_s(deadline);
        if (left <= 0) return false;
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(std::min(left * 1000.0, 1000.0)) + 1);
        if (ready > 0) return true;
        if (ready < 0 && errno != EINTR) return false;
    }
}

void send_all(int fd, const std::uint8_t* data, std::size_t size, Clock::time_point deadline, const std::string& where) {
    for (std::size_t sent = 0; sent < size;) {
        if (!wait_for(fd, POLLOUT, deadline)) fail("{}: timed out sending", where);
        const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN) fail("{}: send failed: {}", where, std::strerror(errno));
        if (n > 0) sent += static_cast<std::size_t>(n);
    }
}

void receive_all(int fd, std::uint8_t* data, std::size_t size, Clock::time_point deadline, const std::string& where) {
    for (std::size_t got = 0; got < size;) {
        if (!wait_for(fd, POLLIN, deadline)) fail("{}: timed out receiving", where);
        const ssize_t n = ::recv(fd, data + got, size - got, 0);
        if (n == 0) fail("{}: the peer closed the connection after {} of {} bytes", where, got, size);
        if (n < 0 && errno != EINTR && errno != EAGAIN) fail("{}: receive failed: {}", where, std::strerror(errno));
        if (n > 0) got += static_cast<std::size_t>(n);
    }
}

}  // namespace

std::vector<std::uint8_t> tcp_rendezvous(const std::string& master_addr, int master_port, int rank, int world_size,
                                         std::span<const std::uint8_t> root_bytes, std::size_t size, double timeout_s) {
    const std::string where = fmt::format("rank {} of {}: rendezvous at {}:{}", rank, world_size, master_addr, master_port);
    if (master_addr.empty() || master_port <= 0 || master_port > 65535)
        fail("{}: MASTER_ADDR and MASTER_PORT must name where rank 0 listens", where);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    const std::uint64_t length = size;
    if (rank == 0) {
        if (root_bytes.size() != size) fail("{}: rank 0 has {} bytes to hand out, expected {}", where, root_bytes.size(), size);
        const auto address = resolve(master_addr, master_port, true, where);
        Socket listener(::socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (listener.fd() < 0) fail("{}: socket: {}", where, std::strerror(errno));
        const int yes = 1;
        ::setsockopt(listener.fd(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        if (::bind(listener.fd(), address->ai_addr, address->ai_addrlen) != 0 || ::listen(listener.fd(), world_size) != 0)
            fail("{}: cannot listen: {}", where, std::strerror(errno));
        for (int served = 0; served < world_size - 1; ++served) {
            if (!wait_for(listener.fd(), POLLIN, deadline))
                fail("{}: only {} of the {} other ranks arrived within {:g} s", where, served, world_size - 1, timeout_s);
            Socket peer(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
            if (peer.fd() < 0) fail("{}: accept: {}", where, std::strerror(errno));
            send_all(peer.fd(), reinterpret_cast<const std::uint8_t*>(&length), sizeof(length), deadline, where);
            send_all(peer.fd(), root_bytes.data(), size, deadline, where);
        }
        return {root_bytes.begin(), root_bytes.end()};
    }
    const auto address = resolve(master_addr, master_port, false, where);
    for (;;) {
        Socket peer(::socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (peer.fd() < 0) fail("{}: socket: {}", where, std::strerror(errno));
        if (::connect(peer.fd(), address->ai_addr, address->ai_addrlen) == 0) {
            std::uint64_t announced = 0;
            receive_all(peer.fd(), reinterpret_cast<std::uint8_t*>(&announced), sizeof(announced), deadline, where);
            if (announced != length) fail("{}: rank 0 sends {} bytes, expected {}", where, announced, size);
            std::vector<std::uint8_t> bytes(size);
            receive_all(peer.fd(), bytes.data(), size, deadline, where);
            return bytes;
        }
        if (remaining_s(deadline) <= 0) fail("{}: rank 0 did not accept a connection within {:g} s", where, timeout_s);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

}  // namespace kindred::dist
