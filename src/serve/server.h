// serve/server.h — `kindred serve`'s HTTP side: OpenAI's endpoints over cpp-httplib (Debian's
// libcpp-httplib-dev; the library llama.cpp's server is built on: a maintained, header-declared
// HTTP/1.1 server with a thread pool, chunked responses for server-sent events, payload limits and
// timeouts, and nothing else to pull in).
//
//   GET  /health               {"status": "ok", "slots": {...}}; never needs the key
//   GET  /v1/models            the base model and every named adapter
//   POST /v1/chat/completions  messages through the model's chat template; "stream" as SSE; the
//                              `kindred` extension adds style tokens and the decoding controller
//                              (serve/controlled.h)
//   POST /v1/completions       a raw prompt (control-token text in it stays text: only a chat
//                              template writes control tokens)
// The request's `model` picks the base (its name) or a named adapter; all share one mapped base,
// and sequences with different adapters decode in the same batch. Errors are OpenAI's error
// object with 400 (malformed body, bad field, prompt over the context), 401 (missing or wrong
// key), 404 (unknown model or path), 413 (body over the limit), 503 (queue full, shutting down).
//
// A non-streamed reply that takes more than a second is sent chunked, with a space written every
// second until the JSON follows (JSON allows leading whitespace): that is how a client that hung
// up is noticed, and its slot freed, without waiting for its generation to end. A stream sends an
// SSE comment line instead while no token is due. On shutdown (SIGTERM/SIGINT via
// serve_until_signalled) new requests get 503, running ones may finish for the grace period, the
// rest end with an error event, then the listener closes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "infer/loaded_model.h"
#include "model/lora_adapters.h"
#include "data/style.h"
#include "serve/controlled.h"
#include "serve/engine.h"
#include "serve/protocol.h"

namespace httplib {
class Server;
}

namespace kindred::serve {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                    // 0 = any free port (bind() tells which)
    std::string api_key;                // empty = none needed
    std::string model_name;             // the base model's id; empty = the GGUF's file name without .gguf
    std::size_t max_body_bytes = 2u << 20;
    std::size_t max_messages = 256;
    std::int64_t max_tokens = 0;        // most tokens per request; 0 = a slot's context
    std::chrono::seconds timeout{600};  // socket read/write timeout (llama-server's default)
    std::chrono::seconds shutdown_grace{30};
    bool log_requests = true;           // one line per generation on stderr
};

struct NamedAdapter {
    std::string name;
    std::string directory;
};

class Server {
public:
    // `model` (loaded without an adapter) must outlive the server. Reads every adapter directory
    // (Errors name the directory), starts the engine. Names must be unique and differ from the
    // base model's.
    Server(infer::LoadedModel& model, const std::vector<NamedAdapter>& adapters, const EngineOptions& engine,
           ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the listening socket; returns the port. Error when the address cannot be bound.
    int bind();
    // Serves until shutdown(); call after bind().
    void listen();
    // Graceful stop (see above); returns once the listener has closed. Safe from any thread.
    void shutdown();
    // During shutdown(): give up waiting for running requests now.
    void hurry();

    const std::string& base_name() const { return base_name_; }
    const ServerOptions& options() const { return options_; }

private:
    struct Routes;
    infer::LoadedModel& model_;
    ServerOptions options_;
    std::string base_name_;
    std::vector<std::pair<std::string, std::unique_ptr<model::LoraAdapters>>> adapters_;
    std::vector<std::vector<data::StyleTokens>> adapter_styles_;  // each adapter's styles.json, in adapters_' order
    std::unique_ptr<Engine> engine_;
    std::unique_ptr<ControlledRuns> controlled_;  // after engine_: its threads end before the engine goes
    std::int64_t queue_limit_ = 0;  // the engine's queue: a controlled request is refused (503) when it is full
    std::unique_ptr<httplib::Server> http_;
    int listening_socket_ = -1;  // the socket bind() bound, seen through the library's socket-options hook
    std::atomic<std::int64_t> responding_{0};  // generation responses not yet fully written
    std::atomic<bool> shut_down_{false};
    // listen() and shutdown() in either order: a shutdown before listen() makes it return at once,
    // one after listen() was entered waits for the library's loop to start before stopping it (a
    // stop before the loop runs is lost, and the loop would wait in accept() forever).
    std::mutex listen_mutex_;
    bool listen_entered_ = false;
    std::atomic<bool> listen_returned_{false};
};

// SIGTERM and SIGINT, turned from process killers into a graceful shutdown: a handler (whichever
// thread the signal lands on, OpenBLAS's included) writes to a pipe that serve()'s watcher reads.
// One per process.
class ShutdownSignals {
public:
    ShutdownSignals();
    // Serves until the first signal, then shuts the server down gracefully (a second signal cuts
    // the grace period short); returns once the server has stopped.
    void serve(Server& server);

private:
    int read_fd_ = -1;
};

}  // namespace kindred::serve
