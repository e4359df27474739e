// serve/server.cpp — routes, authentication, replies and streams, shutdown (see server.h).
#include "serve/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "core/error.h"
#include "infer/styled_prompt.h"

namespace kindred::serve {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often a waiting response shows the client it is alive (and learns whether the client is).
constexpr auto kHeartbeat = 1s;
// After the engine has drained: how long the last bytes may take to reach the clients.
constexpr auto kWriteOutGrace = 5s;

std::int64_t unix_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) { send_json(res, error.status, error_object(error)); }

// Compares without returning early at the first differing byte, so timing tells nothing about the key.
bool same_secret(std::string_view given, std::string_view expected) {
    unsigned char difference = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < given.size(); ++i)
        difference |= static_cast<unsigned char>(given[i] ^ expected[i % std::max<std::size_t>(expected.size(), 1)]);
    return difference == 0;
}

std::string default_model_name(const std::string& path) {
    std::string name = std::filesystem::path(path).filename().string();
    if (name.ends_with(".gguf")) name.resize(name.size() - 5);
    return name;
}

// What one generation request carries from its handler to the writer of its response.
struct Reply {
    Endpoint endpoint = Endpoint::ChatCompletions;
    ReplyHeader header;
    std::shared_ptr<Channel> channel;
    bool include_usage = false;
    Clock::time_point start = Clock::now();
    bool opened = false;  // stream: the role chunk went out
    bool closed = false;  // the whole response went out
    std::shared_ptr<infer::TurnLog> controller_log;  // a controlled request's; read once the channel has finished
};

// The `kindred` object a controlled reply carries: the public form of the controller's log (what it
// did: triggers, re-decodes, repairs, the checker's verdicts), never its reflection, summary or prompts.
nlohmann::json kindred_extension(const infer::TurnLog& log) {
    return {{"controller", nlohmann::json::parse(infer::to_json(log, /*hidden=*/false).dump())}};
}

// One line for the request log: what the controller did this turn.
std::string controller_summary(const infer::TurnLog& log) {
    std::vector<std::string> rules;
    for (const data::SafetyTrigger& trigger : log.triggers) rules.push_back(trigger.rule);
    return fmt::format(" controller: triggers={} redecoded={} safety={} repairs={} generated={}", rules.empty() ? "none" : fmt::format("{}", fmt::join(rules, ",")),
                       log.redecoded, log.safety_outcome, log.repairs, log.generated_tokens);
}

Usage usage_of(const infer::GenerationResult& result) {
    return {result.prompt_tokens, static_cast<std::int64_t>(result.tokens.size())};
}

// The error a job that the engine gave up on reports.
ApiError engine_error(const std::string& error) {
    if (error == "the server is shutting down") return ApiError(503, "server_error", "shutting_down", "", error);
    return ApiError(500, "server_error", "", "", "generation failed: " + error);
}

}  // namespace

struct Server::Routes {
    Server& server;

    // Index into server.adapters_, nullopt for the base model; ApiError 404 for an unknown name.
    std::optional<std::size_t> adapter_index(const std::string& name) const {
        if (name == server.base_name_) return std::nullopt;
        for (std::size_t i = 0; i < server.adapters_.size(); ++i)
            if (server.adapters_[i].first == name) return i;
        throw ApiError(404, "invalid_request_error", "model_not_found", "model",
                       fmt::format("The model '{}' does not exist; GET /v1/models lists the served ones", name));
    }
    const model::LoraAdapters* adapter_for(const std::string& name) const {
        const auto index = adapter_index(name);
        return index ? server.adapters_[*index].second.get() : nullptr;
    }

    // The request's style, checked against the styles its model was trained with (a base model
    // knows none); nullopt without one.
    std::optional<data::StyleTokens> style_for(const GenerationRequest& request) const {
        if (request.kindred.style.empty()) return std::nullopt;
        const auto index = adapter_index(request.model);
        try {
            return infer::checked_style(request.kindred.style,
                                        index ? std::span<const data::StyleTokens>(server.adapter_styles_[*index])
                                              : std::span<const data::StyleTokens>(),
                                        request.model);
        } catch (const Error& error) {
            bad_request("kindred.style", "{}", error.what());
        }
    }

    Job job_for(const GenerationRequest& request) const {
        infer::LoadedModel& model = server.model_;
        const bool chat = request.endpoint == Endpoint::ChatCompletions;
        Job job;
        job.adapter = adapter_for(request.model);
        const std::optional<data::StyleTokens> style = style_for(request);
        try {
            job.prompt = chat ? infer::encode_styled_chat(model, request.messages, style)
                              : model.encode_raw(request.prompt, /*parse_special=*/false);
        } catch (const ApiError&) {
            throw;
        } catch (const Error& error) {
            bad_request(chat ? "messages" : "prompt", "{}", error.what());
        }
        const std::int64_t context = server.engine_->context();
        // The controller's prompts add its hidden note and instructions to the conversation.
        const std::int64_t overhead = request.kindred.controller ? infer::kControllerPromptOverhead : 0;
        if (static_cast<std::int64_t>(job.prompt.size()) + overhead >= context)
            bad_request(chat ? "messages" : "prompt",
                        "This model's context holds {} tokens per request; the prompt has {}{}. Shorten it.", context,
                        job.prompt.size(),
                        overhead > 0 ? fmt::format(" and the controller's note may add {}", overhead) : std::string());
        job.options.sampling = request.sampling;
        if (!request.seed_given) {
            std::random_device device;
            job.options.sampling.seed = (static_cast<std::uint64_t>(device()) << 32) | device();
        }
        job.options.max_tokens = request.max_tokens;
        job.options.stop_tokens = model.stop_tokens();
        job.options.stop_strings = model.stop_strings();
        job.options.harmony = chat && model.harmony();
        job.options.stop_strings.insert(job.options.stop_strings.end(), request.stop.begin(), request.stop.end());
        return job;
    }

    // The decoding controller for a request: its steps from the `kindred` object, the request's
    // decoding (sampling, seed, max_tokens, stops), the style checked by style_for. The heads are
    // not read: adapters are chosen per request and the guess needs a Session's pooled state.
    ControlledJob controlled_job_for(const GenerationRequest& request, const Job& job) const {
        infer::ControllerOptions options;
        options.reflection = request.kindred.reflection;
        options.safety = request.kindred.safety;
        options.memory = request.kindred.memory;
        options.max_repairs = static_cast<int>(request.kindred.repairs);
        options.heads = false;
        options.style = style_for(request);
        options.generation = job.options;
        if (request.messages.back().role != "user")
            bad_request("messages", "with the controller the conversation must end with a user message");
        ControlledJob controlled;
        controlled.messages = request.messages;
        controlled.controller = std::make_unique<infer::Controller>(server.model_, std::move(options));
        controlled.seed = job.options.sampling.seed;
        controlled.adapter = job.adapter;
        controlled.prompt_tokens = static_cast<std::int64_t>(job.prompt.size());
        return controlled;
    }

    void log(const std::shared_ptr<Reply>& reply, const char* outcome) const {
        if (!server.options_.log_requests) return;
        const infer::GenerationResult& result = reply->channel->result();
        const bool logged = reply->controller_log && reply->channel->finished() && reply->channel->error().empty();
        fmt::print(stderr, "kindred serve: {} {} model={} prompt={} completion={} {} {:.2f}s{}\n",
                   reply->endpoint == Endpoint::ChatCompletions ? "chat" : "completion", reply->header.id,
                   reply->header.model, result.prompt_tokens, result.tokens.size(), outcome,
                   std::chrono::duration<double>(Clock::now() - reply->start).count(),
                   logged ? controller_summary(*reply->controller_log) : std::string());
    }

    // Called once the response has been written, or the client has gone.
    void close(const std::shared_ptr<Reply>& reply) const {
        if (!reply->closed) reply->channel->cancel();
        const std::string& error = reply->channel->finished() ? reply->channel->error() : std::string("client gone");
        log(reply, !reply->closed ? "client-gone"
                   : error.empty() ? infer::finish_reason_name(reply->channel->result().finish_reason)
                                   : "error");
        --server.responding_;
    }

    std::string body_of(const Reply& reply) const {
        const Channel& channel = *reply.channel;
        if (!channel.error().empty()) return dump(error_object(engine_error(channel.error())));
        const infer::GenerationResult& result = channel.result();
        nlohmann::json body = completion_object(reply.endpoint, reply.header, result.text, result.finish_reason, usage_of(result));
        if (reply.controller_log) body["kindred"] = kindred_extension(*reply.controller_log);
        return dump(body);
    }

    void reply_whole(const std::shared_ptr<Reply>& reply, httplib::Response& res) const {
        // A quick generation gets an ordinary response; a longer one is chunked behind heartbeats.
        const auto first_wait = Clock::now() + kHeartbeat;
        std::string ignored;
        while (!reply->channel->finished() && Clock::now() < first_wait)
            reply->channel->wait(ignored, std::chrono::duration_cast<std::chrono::milliseconds>(first_wait - Clock::now()));
        if (reply->channel->finished()) {
            const std::string& error = reply->channel->error();
            if (!error.empty()) {
                send_error(res, engine_error(error));
            } else {
                res.status = 200;
                res.set_content(body_of(*reply), "application/json");
            }
            reply->closed = true;
            close(reply);
            return;
        }
        res.set_chunked_content_provider(
            "application/json",
            [this, reply](std::size_t, httplib::DataSink& sink) {
                std::string discarded;
                reply->channel->wait(discarded, kHeartbeat);
                if (!reply->channel->finished()) return sink.write(" ", 1);
                const std::string body = body_of(*reply);
                if (!sink.write(body.data(), body.size())) return false;
                reply->closed = true;
                sink.done();
                return true;
            },
            [this, reply](bool) { close(reply); });
    }

    void reply_stream(const std::shared_ptr<Reply>& reply, httplib::Response& res) const {
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, reply](std::size_t, httplib::DataSink& sink) {
                const auto send = [&sink](const std::string& event) { return sink.write(event.data(), event.size()); };
                if (!reply->opened && reply->endpoint == Endpoint::ChatCompletions && !send(sse_event(role_chunk(reply->header))))
                    return false;
                reply->opened = true;
                std::string text;
                const bool ready = reply->channel->wait(text, kHeartbeat);
                const bool finished = reply->channel->finished();
                if (finished) reply->channel->wait(text, 0ms);  // whatever arrived before the end
                if (!text.empty() && !send(sse_event(text_chunk(reply->endpoint, reply->header, text)))) return false;
                if (!ready && !send(": waiting\n\n")) return false;  // an SSE comment: clients skip it
                if (!finished) return true;
                const Channel& channel = *reply->channel;
                if (!channel.error().empty()) {
                    if (!send(sse_event(error_object(engine_error(channel.error()))))) return false;
                } else {
                    nlohmann::json finish = finish_chunk(reply->endpoint, reply->header, channel.result().finish_reason);
                    if (reply->controller_log) finish["kindred"] = kindred_extension(*reply->controller_log);
                    if (!send(sse_event(finish))) return false;
                    if (reply->include_usage &&
                        !send(sse_event(usage_chunk(reply->endpoint, reply->header, usage_of(channel.result())))))
                        return false;
                }
                if (!send(std::string(kSseDone))) return false;
                reply->closed = true;
                sink.done();
                return true;
            },
            [this, reply](bool) { close(reply); });
    }

    void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) const {
        RequestLimits limits;
        limits.max_messages = server.options_.max_messages;
        limits.max_tokens = server.options_.max_tokens > 0 ? server.options_.max_tokens : server.engine_->context();
        limits.vocab_size = server.model_.decoder().config().vocab_size;
        const GenerationRequest request = parse_request(req.body, endpoint, limits);
        Job job = job_for(request);

        auto reply = std::make_shared<Reply>();
        reply->endpoint = endpoint;
        reply->header = {new_response_id(endpoint), unix_seconds(), request.model};
        reply->include_usage = request.include_usage;
        if (request.kindred.controller) {
            if (server.engine_->load().queued >= server.queue_limit_)
                throw ApiError(503, "server_error", "queue_full", "", "The server is busy: too many requests are waiting");
            ControlledRun run = server.controlled_->start(controlled_job_for(request, job));
            reply->channel = std::move(run.channel);
            reply->controller_log = std::move(run.log);
        } else {
            reply->channel = server.engine_->submit(std::move(job));
        }
        ++server.responding_;
        if (request.stream) {
            reply_stream(reply, res);
        } else {
            reply_whole(reply, res);
        }
    }

    void models(httplib::Response& res) const {
        nlohmann::json data = nlohmann::json::array();
        const auto add = [&](const std::string& id) {
            data.push_back({{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "kindred"}});
        };
        add(server.base_name_);
        for (const auto& adapter : server.adapters_) add(adapter.first);
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    }

    void health(httplib::Response& res) const {
        const Engine::Load load = server.engine_->load();
        send_json(res, 200,
                  {{"status", "ok"},
                   {"slots", {{"total", server.engine_->slots()}, {"active", load.active}, {"queued", load.queued}}}});
    }

    // Every /v1/ route needs the key when one is set.
    bool authorized(const httplib::Request& req, httplib::Response& res) const {
        const std::string& key = server.options_.api_key;
        if (key.empty() || !req.path.starts_with("/v1/")) return true;
        const std::string header = req.get_header_value("Authorization");
        constexpr std::string_view kBearer = "Bearer ";
        if (header.starts_with(kBearer) && same_secret(std::string_view(header).substr(kBearer.size()), key)) return true;
        send_error(res, ApiError(401, "invalid_request_error", "invalid_api_key", "",
                                 header.empty() ? "You didn't provide an API key: send 'Authorization: Bearer <key>'"
                                                : "Incorrect API key provided"));
        return false;
    }

    // Runs a handler, turning what it throws into OpenAI errors.
    template <typename Handler>
    void guarded(httplib::Response& res, const Handler& handler) const {
        try {
            handler();
        } catch (const ApiError& error) {
            send_error(res, error);
        } catch (const Error& error) {
            send_error(res, ApiError(400, "invalid_request_error", "", "", error.what()));
        }
    }
};

Server::Server(infer::LoadedModel& model, const std::vector<NamedAdapter>& adapters, const EngineOptions& engine,
               ServerOptions options)
    : model_(model), options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
    if (model_.decoder().adapter() != nullptr) fail("serve: load the base model without an adapter; name adapters instead");
    base_name_ = options_.model_name.empty() ? default_model_name(model_.path()) : options_.model_name;
    for (const NamedAdapter& adapter : adapters) {
        if (adapter.name.empty()) fail("--adapter {}: the adapter needs a name (NAME=DIR)", adapter.directory);
        const bool taken = adapter.name == base_name_ ||
                           std::any_of(adapters_.begin(), adapters_.end(), [&](const auto& a) { return a.first == adapter.name; });
        if (taken) fail("--adapter {}={}: the name '{}' is already taken", adapter.name, adapter.directory, adapter.name);
        adapters_.emplace_back(adapter.name, infer::read_lora_adapter(adapter.directory, model_.decoder(), model_.path()));
    }
    if (options_.max_messages < 1) fail("serve: the message limit must be >= 1");
    if (options_.max_body_bytes < 1) fail("serve: the body size limit must be >= 1 byte");
    if (options_.max_tokens < 0) fail("serve: the max-tokens limit must be >= 0, got {}", options_.max_tokens);
    for (const NamedAdapter& adapter : adapters) adapter_styles_.push_back(data::read_trained_styles(adapter.directory));
    engine_ = std::make_unique<Engine>(model_.decoder(), model_.tokenizer(), engine);
    controlled_ = std::make_unique<ControlledRuns>(*engine_, model_);
    queue_limit_ = engine.queue;

    // A connection holds a thread while it waits for its reply: enough for every slot and queue
    // place, plus a few for health checks and refusals.
    const auto threads = static_cast<std::size_t>(engine.slots + engine.queue + 8);
    http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http_->set_payload_max_length(options_.max_body_bytes);
    http_->set_read_timeout(options_.timeout);
    http_->set_write_timeout(options_.timeout);
    http_->set_keep_alive_max_count(1000);
    // The library's own options (address reuse) on the listening socket, which bind() needs to
    // find again: see there.
    http_->set_socket_options([this](socket_t socket) {
        httplib::default_socket_options(socket);
        listening_socket_ = socket;
    });

    auto routes = std::make_shared<Routes>(Routes{*this});
    http_->set_pre_routing_handler([routes](const httplib::Request& req, httplib::Response& res) {
        return routes->authorized(req, res) ? httplib::Server::HandlerResponse::Unhandled
                                            : httplib::Server::HandlerResponse::Handled;
    });
    http_->Get("/health", [routes](const httplib::Request&, httplib::Response& res) { routes->health(res); });
    http_->Get("/v1/models", [routes](const httplib::Request&, httplib::Response& res) { routes->models(res); });
    http_->Post("/v1/chat/completions", [routes](const httplib::Request& req, httplib::Response& res) {
        routes->guarded(res, [&] { routes->generate(req, res, Endpoint::ChatCompletions); });
    });
    http_->Post("/v1/completions", [routes](const httplib::Request& req, httplib::Response& res) {
        routes->guarded(res, [&] { routes->generate(req, res, Endpoint::Completions); });
    });
    // Statuses the library sets itself (unknown path, body too large, unreadable request) get an
    // error object too; replies that already carry one are left alone.
    const std::size_t max_body = options_.max_body_bytes;
    http_->set_error_handler(httplib::Server::HandlerWithResponse([max_body](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = fmt::format("HTTP {}", res.status);
        if (res.status == 404) message = fmt::format("Unknown path: {} {}", req.method, req.path);
        if (res.status == 413) message = fmt::format("The request body exceeds this server's limit of {} bytes", max_body);
        send_error(res, ApiError(res.status, "invalid_request_error", "", "", message));
        return httplib::Server::HandlerResponse::Handled;
    }));
    http_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        std::string message = "internal error";
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            message = fmt::format("internal error: {}", e.what());
        } catch (...) {
        }
        send_error(res, ApiError(500, "server_error", "", "", message));
    });
}

Server::~Server() { shutdown(); }

int Server::bind() {
    // A client that hangs up mid-write must not kill the process.
    ::signal(SIGPIPE, SIG_IGN);
    const int port = options_.port == 0 ? http_->bind_to_any_port(options_.host) : options_.port;
    if (port < 0 || (options_.port != 0 && !http_->bind_to_port(options_.host, options_.port)))
        fail("serve: cannot listen on {}:{} (address in use, or not an address of this machine?)", options_.host,
             options_.port);
    // cpp-httplib 0.11 listens with a backlog of 5 connections. Clients whose replies end in the
    // same batch step reconnect together, overflow it, and the kernel drops their SYNs: a second's
    // retransmit each, and now and then a reset connection (a failed request) where a SYN cookie
    // met the full queue. listen() again on the bound socket is how POSIX sets a larger backlog;
    // the kernel caps it at net.core.somaxconn.
    if (::listen(listening_socket_, SOMAXCONN) != 0)
        fail("serve: cannot set the listen backlog on {}:{}: {}", options_.host, port, std::strerror(errno));
    options_.port = port;
    return port;
}

void Server::listen() {
    {
        const std::lock_guard lock(listen_mutex_);
        if (shut_down_) return;
        listen_entered_ = true;
    }
    http_->listen_after_bind();
    listen_returned_ = true;
}

void Server::shutdown() {
    bool listening = false;
    {
        const std::lock_guard lock(listen_mutex_);
        if (shut_down_.exchange(true)) return;
        listening = listen_entered_;
    }
    engine_->drain(options_.shutdown_grace);
    controlled_->join();  // their decodes have ended with the engine's jobs
    // The engine has ended every job; let the writers put the last bytes on the wire.
    const auto deadline = Clock::now() + kWriteOutGrace;
    while (responding_ > 0 && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    if (listening)
        while (!http_->is_running() && !listen_returned_) std::this_thread::sleep_for(1ms);
    http_->stop();
}

void Server::hurry() { engine_->hurry(); }

namespace {

// The write end of ShutdownSignals' pipe: a signal handler may only do async-signal-safe things,
// so it writes the signal number there and the watcher thread does the rest.
int signal_pipe_write = -1;

void on_shutdown_signal(int signal) {
    const auto byte = static_cast<unsigned char>(signal);
    [[maybe_unused]] const ssize_t written = ::write(signal_pipe_write, &byte, 1);
}

}  // namespace

ShutdownSignals::ShutdownSignals() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) fail("serve: cannot create the signal pipe");
    read_fd_ = fds[0];
    signal_pipe_write = fds[1];
    struct sigaction action {};
    action.sa_handler = on_shutdown_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);
}

void ShutdownSignals::serve(Server& server) {
    std::atomic<bool> stopped{false};
    std::thread watcher([&server, &stopped, this] {
        std::thread closer;
        int seen = 0;
        while (!stopped) {
            pollfd readable{read_fd_, POLLIN, 0};
            unsigned char received = 0;
            if (::poll(&readable, 1, 100) <= 0 || ::read(read_fd_, &received, 1) != 1) continue;
            if (++seen == 1) {
                fmt::print(stderr, "kindred serve: {} received; finishing running requests (send it again to stop now)\n",
                           received == SIGINT ? "SIGINT" : "SIGTERM");
                closer = std::thread([&server] { server.shutdown(); });
            } else {
                server.hurry();
            }
        }
        if (closer.joinable()) closer.join();
    });
    server.listen();
    stopped = true;
    watcher.join();
}

}  // namespace kindred::serve
