// tests/local_http_server.h — an HTTP server on 127.0.0.1 (an ephemeral port) for tests of
// clients: fetchers, judges, chat endpoints. Routes are cpp-httplib handlers registered before
// start(); the server runs on its own thread until the object dies.
//
// Note on ranges: cpp-httplib answers a Range request to a fixed-length body with 206 by itself
// (set_content, set_content_provider with a length); a chunked provider is sent whole with 200,
// which is how a server that ignores ranges behaves.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <httplib.h>

namespace kindred::testing {

class LocalHttpServer {
public:
    LocalHttpServer() = default;
    ~LocalHttpServer() { stop(); }
    LocalHttpServer(const LocalHttpServer&) = delete;
    LocalHttpServer& operator=(const LocalHttpServer&) = delete;

    httplib::Server& routes() { return server_; }

    // Binds 127.0.0.1 on a free port and serves until stop(); returns once it accepts requests.
    void start() {
        port_ = server_.bind_to_any_port("127.0.0.1");
        if (port_ <= 0) throw std::runtime_error("LocalHttpServer: cannot bind 127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!server_.is_running()) {
            if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("LocalHttpServer: did not start");
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    void stop() {
        if (thread_.joinable()) {
            server_.stop();
            thread_.join();
        }
    }

    int port() const { return port_; }
    std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

private:
    httplib::Server server_;
    std::thread thread_;
    int port_ = 0;
};

}  // namespace kindred::testing
