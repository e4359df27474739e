// kindred serve: an OpenAI-compatible HTTP server over one base model and any number of named
// adapters (serve/server.h), until SIGTERM or SIGINT.
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "cli/kv_cache_flag.h"
#include "cli/products_flag.h"
#include "cli/quantize_flag.h"
#include "core/error.h"
#include "infer/loaded_model.h"
#include "model/kv_cache.h"
#include "serve/server.h"

namespace kindred::cli {
namespace {

struct ServeOptions {
    std::string model = "default";
    model::BaseQuantization quantize = model::BaseQuantization::None;
    kernels::Precision products = default_serve_products;
    DType kv_cache = DType::F32;
    std::vector<std::string> adapters;  // NAME=DIR
    serve::ServerOptions server;
    serve::EngineOptions engine;
    int threads = 0;
    std::int64_t grace_seconds = 30;
    std::int64_t timeout_seconds = 600;
};

std::vector<serve::NamedAdapter> named_adapters(const std::vector<std::string>& specs) {
    std::vector<serve::NamedAdapter> adapters;
    for (const std::string& spec : specs) {
        const std::size_t equals = spec.find('=');
        if (equals == std::string::npos || equals == 0 || equals + 1 == spec.size())
            fail("--adapter '{}': expected NAME=DIR (the name requests give as `model`)", spec);
        adapters.push_back({spec.substr(0, equals), spec.substr(equals + 1)});
    }
    return adapters;
}

bool loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

void run_serve(ServeOptions& options) {
    apply_threads_flag(options.threads);
    if (options.grace_seconds < 0) fail("--shutdown-grace must be >= 0, got {}", options.grace_seconds);
    if (options.timeout_seconds < 1) fail("--timeout must be >= 1, got {}", options.timeout_seconds);
    options.server.shutdown_grace = std::chrono::seconds(options.grace_seconds);
    options.server.timeout = std::chrono::seconds(options.timeout_seconds);
    const std::vector<serve::NamedAdapter> adapters = named_adapters(options.adapters);
    serve::ShutdownSignals signals;  // before the model loads: a signal while loading is graceful too
    const auto model = infer::LoadedModel::open(options.model, "", options.quantize, options.products, options.kv_cache);
    report_kv_cache(model->decoder());
    serve::Server server(*model, adapters, options.engine, options.server);
    const int port = server.bind();
    if (!loopback(options.server.host) && options.server.api_key.empty())
        fmt::print(stderr, "kindred serve: warning: listening on {} without --api-key: anyone who can reach it may use it\n",
                   options.server.host);
    std::string names = server.base_name();
    for (const auto& adapter : adapters) names += ", " + adapter.name;
    fmt::print(stderr, "kindred serve: listening on http://{}:{} (models: {}; {} parallel sequences of {} tokens, {} KV cache)\n",
               options.server.host, port, names, options.engine.slots,
               options.engine.context > 0 ? options.engine.context : model->decoder().config().context_length,
               model::kv_cache_type_name(model->decoder().kv_cache_type()));
    signals.serve(server);
    fmt::print(stderr, "kindred serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
    auto options = std::make_shared<ServeOptions>();
    CLI::App* command = app.add_subcommand("serve", "Serve the model over OpenAI's HTTP API (chat and completions, streaming)");
    command->add_option("--model", options->model, "GGUF model file, Hugging Face checkpoint directory, or `default` for the embedded SmolLM2-135M-Instruct")
        ->capture_default_str();
    add_quantize_flag(*command, options->quantize);
    add_products_flag(*command, options->products, default_serve_products);
    add_kv_cache_flag(*command, options->kv_cache);
    command->add_option("--adapter", options->adapters,
                        "NAME=DIR: a PEFT LoRA adapter served as model NAME over the same base (repeatable)");
    command->add_option("--model-name", options->server.model_name,
                        "The base model's id in requests and /v1/models (default: the GGUF file name)");
    command->add_option("--host", options->server.host, "Address to listen on")->capture_default_str();
    command->add_option("--port", options->server.port, "Port to listen on (0 = any free port)")->capture_default_str();
    command->add_option("--api-key", options->server.api_key,
                        "Require 'Authorization: Bearer KEY' on /v1/ routes (also read from KINDRED_API_KEY)")
        ->envname("KINDRED_API_KEY");
    command->add_option("--parallel", options->engine.slots, "Sequences decoded together, each with its own KV cache")
        ->capture_default_str();
    command->add_option("--ctx", options->engine.context, "KV cache tokens per sequence (0 = the model's context length)")
        ->capture_default_str();
    command->add_option("--queue", options->engine.queue, "Requests that may wait for a free sequence before 503")
        ->capture_default_str();
    command->add_option("--batch", options->engine.batch_tokens, "Most tokens in one forward (decode rows + prompt chunk)")
        ->capture_default_str();
    command->add_option("--max-tokens", options->server.max_tokens,
                        "Most tokens one request may generate, also its default (0 = the context)")
        ->capture_default_str();
    command->add_option("--max-messages", options->server.max_messages, "Most messages in one chat request")
        ->capture_default_str();
    command->add_option("--max-body", options->server.max_body_bytes, "Largest request body in bytes (413 above)")
        ->capture_default_str();
    command->add_option("--timeout", options->timeout_seconds, "Socket read/write timeout in seconds")->capture_default_str();
    command->add_option("--shutdown-grace", options->grace_seconds,
                        "Seconds running requests may take to finish after SIGTERM/SIGINT")
        ->capture_default_str();
    command->add_option("--threads", options->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    command->add_flag("--quiet", [options](std::int64_t) { options->server.log_requests = false; },
                      "Do not log one line per request on stderr");
    command->callback([options] { run_serve(*options); });
}

}  // namespace kindred::cli
