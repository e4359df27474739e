// net/openai_chat.h — a client for OpenAI-compatible `POST /v1/chat/completions` endpoints
// (OpenAI, vLLM, llama.cpp's llama-server, `kindred serve`): judges for benchmarks and preference
// pairs, and tested models that Kindred does not run itself.
//
// The endpoint is given by its base URL ("http://127.0.0.1:8080/v1"); "/chat/completions" is
// appended unless the URL already ends with it. Transport failures and 408/429/5xx are retried
// by net/http.h's policy; any other non-2xx status is an Error carrying the server's own error
// message (OpenAI's {"error": {"message": ...}} object when present). Only non-streamed replies
// are requested. Counters are kept per client and are safe to read while other threads call
// complete().
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/http.h"

namespace kindred::net {

struct ChatEndpoint {
    std::string base_url;
    std::string model;
    std::string api_key;  // sent as "Authorization: Bearer ..." when not empty
    // USD per million tokens, for the cost counter (0 = not priced).
    double input_price_per_million = 0.0;
    double output_price_per_million = 0.0;
    HttpOptions http;
};

struct ChatTurn {
    std::string role;  // system | user | assistant
    std::string content;
};

struct ChatCompletionRequest {
    std::vector<ChatTurn> messages;
    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<double> min_p;  // not OpenAI's, but vLLM, llama.cpp and EQ-Bench 3's harness send it
    std::optional<std::int64_t> max_tokens;
    std::optional<std::int64_t> seed;
    std::vector<std::string> stop;
    // Further top-level fields, merged last (they win over the ones above).
    nlohmann::json extra = nlohmann::json::object();
};

struct ChatCompletion {
    std::string content;         // choices[0].message.content ("" when null)
    std::string finish_reason;   // "" when absent
    std::string model;           // as the server names itself ("" when absent)
    std::int64_t prompt_tokens = -1;      // usage; -1 when the server did not report it
    std::int64_t completion_tokens = -1;
};

// Totals over a client's life. Calls that ended in an Error count as failed, not completed.
struct ChatUsage {
    std::int64_t completed_calls = 0;
    std::int64_t failed_calls = 0;
    std::int64_t prompt_tokens = 0;      // reported tokens only
    std::int64_t completion_tokens = 0;
    double cost_usd = 0.0;
};

// The request body sent for `request` to `model` (exposed for tests and for logging a run's
// settings).
nlohmann::json chat_request_body(const std::string& model, const ChatCompletionRequest& request);

// Parses a response body; Error naming `source` when it is not a chat completion (not JSON, no
// choices, a message without content of string or null type, negative usage counts).
ChatCompletion parse_chat_completion(const std::string& body, const std::string& source);

class ChatClient {
public:
    explicit ChatClient(ChatEndpoint endpoint);

    // One completion. Throws Error naming the URL on failure (see the top of this file).
    ChatCompletion complete(const ChatCompletionRequest& request);

    ChatUsage usage() const;
    const ChatEndpoint& endpoint() const { return endpoint_; }
    const std::string& url() const { return url_; }

private:
    ChatEndpoint endpoint_;
    std::string url_;
    std::atomic<std::int64_t> completed_calls_{0};
    std::atomic<std::int64_t> failed_calls_{0};
    std::atomic<std::int64_t> prompt_tokens_{0};
    std::atomic<std::int64_t> completion_tokens_{0};
};

}  // namespace kindred::net
