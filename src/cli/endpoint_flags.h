// cli/endpoint_flags.h — the flags of a judge endpoint (--judge-url, --judge-model, --judge-key-env,
// timeout and prices) and the client they make, shared by the commands that ask a judge
// (`eval eqbench3`, `eval eqbench3 compare`, `eval judge-emotions`).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "net/openai_chat.h"

namespace kindred::cli {

struct EndpointFlags {
    std::string url;
    std::string model;
    std::string key_env;
    double timeout_s = 600.0;
    double price_in = 0.0;   // USD per million tokens
    double price_out = 0.0;
};

// Adds --judge-url, --judge-model, --judge-key-env, --judge-timeout, --judge-price-in/out.
void add_judge_endpoint_flags(CLI::App* command, EndpointFlags& judge);

// Errors (naming `what`) for a missing URL or model name, or a key variable that is not set.
std::unique_ptr<net::ChatClient> endpoint_client(const EndpointFlags& flags, const char* what);

// A model is named by the endpoint's model name; the URL is recorded apart from it, since a
// resume may reach the same judge at another address.
nlohmann::json endpoint_identity(const EndpointFlags& flags);

// The client's counters: calls, failed calls, tokens, cost.
nlohmann::json usage_json(const net::ChatClient& client);

}  // namespace kindred::cli
