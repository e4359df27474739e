#include "cli/endpoint_flags.h"

#include <cstdlib>

#include "core/error.h"

namespace kindred::cli {

void add_judge_endpoint_flags(CLI::App* command, EndpointFlags& judge) {
    command->add_option("--judge-url", judge.url, "Judge endpoint, OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1)");
    command->add_option("--judge-model", judge.model, "Model name the judge endpoint serves");
    command->add_option("--judge-key-env", judge.key_env, "Environment variable holding the judge's API key (sent as a Bearer token)");
    command->add_option("--judge-timeout", judge.timeout_s, "Seconds one judge call may take (default 600)");
    command->add_option("--judge-price-in", judge.price_in, "Judge price, USD per million prompt tokens (for the cost counter)");
    command->add_option("--judge-price-out", judge.price_out, "Judge price, USD per million completion tokens");
}

std::unique_ptr<net::ChatClient> endpoint_client(const EndpointFlags& flags, const char* what) {
    if (flags.url.empty()) fail("{}: give its URL", what);
    if (flags.model.empty()) fail("{}: give the model name the endpoint serves", what);
    net::ChatEndpoint endpoint;
    endpoint.base_url = flags.url;
    endpoint.model = flags.model;
    if (!flags.key_env.empty()) {
        const char* key = std::getenv(flags.key_env.c_str());
        if (key == nullptr || *key == '\0') fail("the environment variable {} (named by the key flag) is not set", flags.key_env);
        endpoint.api_key = key;
    }
    endpoint.input_price_per_million = flags.price_in;
    endpoint.output_price_per_million = flags.price_out;
    endpoint.http.timeout_s = flags.timeout_s;
    return std::make_unique<net::ChatClient>(std::move(endpoint));
}

nlohmann::json endpoint_identity(const EndpointFlags& flags) { return {{"model", flags.model}}; }

nlohmann::json usage_json(const net::ChatClient& client) {
    const net::ChatUsage usage = client.usage();
    return {{"calls", usage.completed_calls},     {"failed_calls", usage.failed_calls}, {"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens}, {"cost_usd", usage.cost_usd}};
}

}  // namespace kindred::cli
