// serve/protocol.h — OpenAI's wire format for `kindred serve`: request bodies in (parsed with
// bounded nesting, every field checked, into a GenerationRequest), response objects, stream chunks
// and error objects out. Pure functions of their arguments, so the fuzz target and the tests drive
// them without a socket.
//
// Request fields (POST /v1/chat/completions and /v1/completions), all optional but `model` and
// `messages` (chat) or `prompt` (completions); null means absent:
//   temperature [0, 2], top_p (0, 1], min_p [0, 1], top_k >= 0, max_tokens / max_completion_tokens
//   (>= 1, capped at the server's limit; both given must agree), stop (a string or up to 4), seed (any 64-bit integer), n = 1,
//   logit_bias ({"token id": bias in [-100, 100]}), presence_penalty and frequency_penalty
//   [-2, 2], repeat_penalty / repetition_penalty (llama.cpp's and vLLM's spelling, > 0),
//   repeat_last_n, stream, stream_options.include_usage; on chat completions, Kindred's extension
//   object `kindred` (KindredOptions; an unknown field inside it is a 400 naming it).
// Accepted and ignored because they change nothing here: user, metadata, store, service_tier,
// parallel_tool_calls, an empty `tools` list, tool_choice "none", response_format {"type": "text"},
// logprobs false. Any other field is a 400 naming it, as OpenAI answers an unrecognized argument:
// a request that asks for something (tools, images, n > 1) is refused rather than half-served.
// Omitted sampling fields take Kindred's defaults, the same as `kindred generate` (llama.cpp's).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "infer/generator.h"
#include "infer/sampler.h"
#include "text/chat_template.h"

namespace kindred::serve {

// An error the client is told about: the HTTP status and OpenAI's error object
// {"error": {"message", "type", "param", "code"}}.
class ApiError : public Error {
public:
    ApiError(int http_status, std::string error_type, std::string error_code, std::string error_param,
             const std::string& message)
        : Error(message), status(http_status), type(std::move(error_type)), code(std::move(error_code)),
          param(std::move(error_param)) {}

    int status;
    std::string type;   // invalid_request_error, authentication_error, server_error
    std::string code;   // empty = null
    std::string param;  // the request field at fault; empty = null
};

// 400 invalid_request_error naming `param`.
template <typename... Args>
[[noreturn]] void bad_request(std::string param, fmt::format_string<Args...> format, Args&&... args) {
    throw ApiError(400, "invalid_request_error", "", std::move(param), fmt::format(format, std::forward<Args>(args)...));
}

enum class Endpoint { ChatCompletions, Completions };

// What one request may ask for.
struct RequestLimits {
    std::size_t max_messages = 256;
    std::int64_t max_tokens = 4096;  // most tokens one request generates (larger asks are capped); the default
    std::int64_t vocab_size = 0;     // bounds logit_bias ids
};

// The `kindred` extension object of a chat request (docs/serve.md): style tokens and the decoding
// controller (docs/controller.md). Its fields are checked here; the style's tags against the
// requested model's trained styles by the server.
struct KindredOptions {
    bool controller = false;
    std::string style;  // "<tone:warm><persona:best_friend>"; empty = none
    // The controller's steps, as `kindred chat --controller` has them (only with controller).
    bool reflection = true;
    bool safety = true;
    bool memory = true;
    std::int64_t repairs = 2;
};

struct GenerationRequest {
    Endpoint endpoint = Endpoint::ChatCompletions;
    std::string model;
    std::vector<text::ChatMessage> messages;  // chat completions
    std::string prompt;                       // completions
    infer::SamplingParams sampling;           // seed filled only when seed_given
    bool seed_given = false;
    std::int64_t max_tokens = 0;  // 1..limits.max_tokens
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
    KindredOptions kindred;      // chat completions only
};

// Parses a request body. Malformed JSON, wrong types, out-of-range values, unknown fields and
// limits exceeded are ApiError 400 naming the field ("messages[2].content", "temperature").
GenerationRequest parse_request(std::string_view body, Endpoint endpoint, const RequestLimits& limits);

// OpenAI's finish_reason: a full context is "length", as OpenAI and llama-server report it.
const char* openai_finish_reason(infer::FinishReason reason);

// What a response says about one generation.
struct ReplyHeader {
    std::string id;  // chatcmpl-... / cmpl-...
    std::int64_t created = 0;  // Unix seconds
    std::string model;
};

struct Usage {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
};

// A fresh response id for the endpoint ("chatcmpl-" or "cmpl-" and 24 random hex digits).
std::string new_response_id(Endpoint endpoint);

// The whole (non-streamed) response: chat.completion or text_completion with one choice and usage.
nlohmann::json completion_object(Endpoint endpoint, const ReplyHeader& header, const std::string& text,
                                 infer::FinishReason reason, const Usage& usage);

// One stream chunk (chat.completion.chunk or text_completion). The chat stream opens with a chunk
// whose delta is {"role": "assistant", "content": ""} (role_delta), then text deltas, then one with
// an empty delta and the finish_reason; the usage chunk has no choices.
nlohmann::json role_chunk(const ReplyHeader& header);
nlohmann::json text_chunk(Endpoint endpoint, const ReplyHeader& header, std::string_view text);
nlohmann::json finish_chunk(Endpoint endpoint, const ReplyHeader& header, infer::FinishReason reason);
nlohmann::json usage_chunk(Endpoint endpoint, const ReplyHeader& header, const Usage& usage);

// "data: <json>\n\n" (and "data: [DONE]\n\n" for the end of a stream).
std::string sse_event(const nlohmann::json& data);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// {"error": {...}} for an ApiError.
nlohmann::json error_object(const ApiError& error);

// JSON text with invalid UTF-8 (a model may emit any bytes) replaced, never an exception.
std::string dump(const nlohmann::json& value);

}  // namespace kindred::serve
