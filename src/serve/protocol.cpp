// serve/protocol.cpp — request parsing and response objects (see protocol.h).
#include "serve/protocol.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <cmath>
#include <random>

#include "core/json.h"

namespace kindred::serve {
namespace {

using nlohmann::json;

// The deepest legal body: {"messages": [{"content": [{"text": ...}]}]}, depth 5; a little slack.
constexpr int kBodyJsonDepth = 8;
// OpenAI accepts up to 4 stop sequences.
constexpr std::size_t kMaxStopSequences = 4;

std::string field(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

double number_in(const json& value, const std::string& param, double low, double high) {
    if (!value.is_number()) bad_request(param, "'{}' must be a number", param);
    const double x = value.get<double>();
    if (!(x >= low && x <= high)) bad_request(param, "'{}' must be in [{}, {}], got {}", param, low, high, x);
    return x;
}

std::int64_t integer_in(const json& value, const std::string& param, std::int64_t low, std::int64_t high) {
    if (!value.is_number_integer()) bad_request(param, "'{}' must be an integer", param);
    if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(high))
        bad_request(param, "'{}' must be in [{}, {}], got {}", param, low, high, value.get<std::uint64_t>());
    const auto x = value.get<std::int64_t>();
    if (x < low || x > high) bad_request(param, "'{}' must be in [{}, {}], got {}", param, low, high, x);
    return x;
}

bool boolean(const json& value, const std::string& param) {
    if (!value.is_boolean()) bad_request(param, "'{}' must be true or false", param);
    return value.get<bool>();
}

const std::string& string(const json& value, const std::string& param) {
    if (!value.is_string()) bad_request(param, "'{}' must be a string", param);
    return value.get_ref<const std::string&>();
}

// A message's content: a string, or text parts joined by newlines (as vLLM joins them).
std::string message_content(const json& content, const std::string& param) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) bad_request(param, "'{}' must be a string or an array of text parts", param);
    std::string joined;
    for (std::size_t i = 0; i < content.size(); ++i) {
        const std::string part = fmt::format("{}[{}]", param, i);
        const json& item = content[i];
        if (!item.is_object()) bad_request(part, "'{}' must be an object", part);
        // The type first: an image part is refused as an image, not for its image_url field.
        if (const auto type = item.find("type"); type != item.end() && string(*type, field(part, "type")) != "text")
            bad_request(field(part, "type"), "'{}' is '{}'; only text parts are supported", field(part, "type"),
                        type->get<std::string>());
        for (const auto& [key, value] : item.items())
            if (key != "type" && key != "text")
                bad_request(field(part, key), "'{}': unrecognized field of a content part", field(part, key));
        if (!item.contains("type") || !item.contains("text"))
            bad_request(part, "'{}' needs \"type\": \"text\" and \"text\"", part);
        if (i > 0) joined += '\n';
        joined += string(item["text"], field(part, "text"));
    }
    return joined;
}

std::vector<text::ChatMessage> parse_messages(const json& list, const RequestLimits& limits) {
    if (!list.is_array() || list.empty()) bad_request("messages", "'messages' must be a non-empty array");
    if (list.size() > limits.max_messages)
        bad_request("messages", "'messages' holds {} messages; this server accepts at most {}", list.size(),
                    limits.max_messages);
    std::vector<text::ChatMessage> messages;
    messages.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string param = fmt::format("messages[{}]", i);
        const json& item = list[i];
        if (!item.is_object()) bad_request(param, "'{}' must be an object", param);
        text::ChatMessage message;
        bool has_role = false, has_content = false;
        for (const auto& [key, value] : item.items()) {
            const std::string name = field(param, key);
            if (key == "role") {
                message.role = string(value, name);
                has_role = true;
            } else if (key == "content") {
                message.content = message_content(value, name);
                has_content = true;
            } else if (key == "name") {
                string(value, name);  // a participant's name: the templates have no place for it
            } else if (key == "tool_calls" || key == "tool_call_id" || key == "function_call") {
                bad_request(name, "'{}': tool calls are not supported", name);
            } else {
                bad_request(name, "'{}': unrecognized message field", name);
            }
        }
        if (!has_role) bad_request(field(param, "role"), "'{}' is missing", field(param, "role"));
        if (!has_content) bad_request(field(param, "content"), "'{}' is missing", field(param, "content"));
        const std::string& role = message.role;
        if (role != "system" && role != "developer" && role != "user" && role != "assistant")
            bad_request(field(param, "role"), "'{}' is '{}'; expected system, developer, user or assistant",
                        field(param, "role"), role);
        messages.push_back(std::move(message));
    }
    return messages;
}

std::vector<std::string> parse_stop(const json& value) {
    std::vector<std::string> stop;
    if (value.is_string()) {
        stop.push_back(value.get<std::string>());
    } else if (value.is_array()) {
        if (value.size() > kMaxStopSequences)
            bad_request("stop", "'stop' holds {} sequences; at most {} are allowed", value.size(), kMaxStopSequences);
        for (std::size_t i = 0; i < value.size(); ++i) stop.push_back(string(value[i], fmt::format("stop[{}]", i)));
    } else {
        bad_request("stop", "'stop' must be a string or an array of strings");
    }
    for (const std::string& s : stop)
        if (s.empty()) bad_request("stop", "'stop' sequences must not be empty");
    return stop;
}

std::vector<std::pair<std::int32_t, float>> parse_logit_bias(const json& value, std::int64_t vocab_size) {
    if (!value.is_object()) bad_request("logit_bias", "'logit_bias' must be an object of token id -> bias");
    std::vector<std::pair<std::int32_t, float>> biases;
    for (const auto& [key, bias] : value.items()) {
        const std::string param = fmt::format("logit_bias.{}", key);
        std::int64_t id = -1;
        const auto parsed = std::from_chars(key.data(), key.data() + key.size(), id);
        if (parsed.ec != std::errc{} || parsed.ptr != key.data() + key.size() || id < 0 || id >= vocab_size)
            bad_request(param, "'logit_bias' key '{}' is not a token id in [0, {})", key, vocab_size);
        biases.emplace_back(static_cast<std::int32_t>(id), static_cast<float>(number_in(bias, param, -100.0, 100.0)));
    }
    return biases;
}

std::uint64_t parse_seed(const json& value) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer()) return static_cast<std::uint64_t>(value.get<std::int64_t>());  // two's complement
    bad_request("seed", "'seed' must be an integer");
}

void parse_stream_options(const json& value, GenerationRequest& request) {
    if (!value.is_object()) bad_request("stream_options", "'stream_options' must be an object");
    for (const auto& [key, option] : value.items()) {
        if (key != "include_usage") bad_request(field("stream_options", key), "'stream_options.{}': unrecognized option", key);
        request.include_usage = boolean(option, "stream_options.include_usage");
    }
}

// Most checker repairs a request may ask for: each is one more decode of the reply.
constexpr std::int64_t kMaxRepairs = 4;
// A style is a few short tags; anything longer is not one.
constexpr std::size_t kMaxStyleBytes = 256;

KindredOptions parse_kindred(const json& value) {
    if (!value.is_object()) bad_request("kindred", "'kindred' must be an object");
    KindredOptions options;
    std::string step_without_controller;
    for (const auto& [key, option] : value.items()) {
        const std::string param = field("kindred", key);
        if (option.is_null()) continue;
        if (key == "controller") {
            options.controller = boolean(option, param);
            continue;
        }
        if (key == "style") {
            options.style = string(option, param);
            if (options.style.empty() || options.style.size() > kMaxStyleBytes)
                bad_request(param, "'{}' must be 1 to {} bytes of style tags such as <tone:warm><persona:best_friend>", param,
                            kMaxStyleBytes);
            continue;
        }
        if (key == "reflection") {
            options.reflection = boolean(option, param);
        } else if (key == "safety") {
            options.safety = boolean(option, param);
        } else if (key == "memory") {
            options.memory = boolean(option, param);
        } else if (key == "repairs") {
            options.repairs = integer_in(option, param, 0, kMaxRepairs);
        } else {
            bad_request(param, "'{}': unrecognized field of the kindred extension (known: controller, style, reflection, safety, memory, repairs)",
                        param);
        }
        step_without_controller = param;
    }
    if (!options.controller && !step_without_controller.empty())
        bad_request(step_without_controller, "'{}' is a controller setting: it needs \"controller\": true", step_without_controller);
    return options;
}

// Fields a client may send that change nothing here when they hold these neutral values.
void accept_neutral(const std::string& key, const json& value) {
    const auto refuse = [&](std::string_view what) { bad_request(key, "'{}': {} is not supported", key, what); };
    if (key == "user" || key == "metadata" || key == "store" || key == "service_tier" || key == "parallel_tool_calls") return;
    if (key == "tools" || key == "functions") {
        if (!value.is_array() || !value.empty()) refuse("tool calling");
    } else if (key == "tool_choice" || key == "function_call") {
        if (value != "none") refuse("tool calling");
    } else if (key == "response_format") {
        if (!value.is_object() || value.size() != 1 || value.value("type", "") != "text") refuse("a response format other than text");
    } else if (key == "logprobs") {
        if (value != false && value != 0) refuse("logprobs");
    } else if (key == "top_logprobs") {
        if (value != 0) refuse("logprobs");
    } else if (key == "echo") {
        if (value != false) refuse("echo");
    } else if (key == "best_of") {
        if (value != 1) refuse("best_of other than 1");
    } else if (key == "suffix") {
        if (value != "") refuse("suffix");
    } else {
        bad_request(key, "Unrecognized request argument supplied: {}", key);
    }
}

}  // namespace

GenerationRequest parse_request(std::string_view body, Endpoint endpoint, const RequestLimits& limits) {
    json root;
    try {
        root = parse_json(body, "request body", kBodyJsonDepth);
    } catch (const Error& error) {
        bad_request("", "{}", error.what());
    }
    if (!root.is_object()) bad_request("", "the request body must be a JSON object");

    GenerationRequest request;
    request.endpoint = endpoint;
    const bool chat = endpoint == Endpoint::ChatCompletions;
    bool has_model = false, has_input = false;
    std::optional<std::int64_t> max_tokens, max_completion_tokens;
    infer::SamplingParams& s = request.sampling;
    for (const auto& [key, value] : root.items()) {
        if (value.is_null()) continue;  // null is OpenAI's "not given"
        if (key == "model") {
            request.model = string(value, key);
            has_model = true;
        } else if (chat && key == "messages") {
            request.messages = parse_messages(value, limits);
            has_input = true;
        } else if (!chat && key == "prompt") {
            if (value.is_array() && value.size() == 1 && value[0].is_string()) {
                request.prompt = value[0].get<std::string>();
            } else if (value.is_string()) {
                request.prompt = value.get<std::string>();
            } else {
                bad_request(key, "'prompt' must be a string (or an array of one string)");
            }
            has_input = true;
        } else if (key == "temperature") {
            s.temperature = static_cast<float>(number_in(value, key, 0.0, 2.0));
        } else if (key == "top_p") {
            const double top_p = number_in(value, key, 0.0, 1.0);
            if (top_p == 0.0) bad_request(key, "'top_p' must be > 0 (use temperature 0 for greedy decoding)");
            s.top_p = static_cast<float>(top_p);
        } else if (key == "min_p") {
            s.min_p = static_cast<float>(number_in(value, key, 0.0, 1.0));
        } else if (key == "top_k") {
            s.top_k = static_cast<std::int32_t>(integer_in(value, key, 0, limits.vocab_size));
        } else if (key == "max_tokens") {
            max_tokens = integer_in(value, key, 1, std::numeric_limits<std::int64_t>::max());
        } else if (key == "max_completion_tokens") {
            max_completion_tokens = integer_in(value, key, 1, std::numeric_limits<std::int64_t>::max());
        } else if (key == "stop") {
            request.stop = parse_stop(value);
        } else if (key == "seed") {
            s.seed = parse_seed(value);
            request.seed_given = true;
        } else if (key == "n") {
            integer_in(value, key, 1, 1);
        } else if (key == "logit_bias") {
            s.logit_bias = parse_logit_bias(value, limits.vocab_size);
        } else if (key == "presence_penalty") {
            s.presence_penalty = static_cast<float>(number_in(value, key, -2.0, 2.0));
        } else if (key == "frequency_penalty") {
            s.frequency_penalty = static_cast<float>(number_in(value, key, -2.0, 2.0));
        } else if (key == "repeat_penalty" || key == "repetition_penalty") {
            s.repeat_penalty = static_cast<float>(number_in(value, key, 0.0, 10.0));
            if (s.repeat_penalty == 0.0f) bad_request(key, "'{}' must be > 0 (1 = off)", key);
        } else if (key == "repeat_last_n") {
            s.repeat_last_n = static_cast<std::int32_t>(integer_in(value, key, -1, std::numeric_limits<std::int32_t>::max()));
        } else if (key == "stream") {
            request.stream = boolean(value, key);
        } else if (key == "stream_options") {
            parse_stream_options(value, request);
        } else if (key == "kindred") {
            if (!chat) bad_request(key, "'kindred' (style tokens, the decoding controller) applies to /v1/chat/completions only");
            request.kindred = parse_kindred(value);
        } else {
            accept_neutral(key, value);
        }
    }
    if (!has_model) bad_request("model", "'model' is missing");
    if (!has_input) bad_request(chat ? "messages" : "prompt", "'{}' is missing", chat ? "messages" : "prompt");
    if (max_tokens && max_completion_tokens && *max_tokens != *max_completion_tokens)
        bad_request("max_completion_tokens", "'max_tokens' ({}) and 'max_completion_tokens' ({}) disagree", *max_tokens,
                    *max_completion_tokens);
    // Above the server's limit a budget is lowered to it, not refused: harnesses send budgets like
    // 12000 whatever the model, and llama-server accepts them too (it stops at its slot's context).
    // The reply's finish_reason "length" and usage show where it stopped.
    request.max_tokens = std::min(max_completion_tokens.value_or(max_tokens.value_or(limits.max_tokens)), limits.max_tokens);
    if (request.include_usage && !request.stream)
        bad_request("stream_options", "'stream_options' is only allowed when 'stream' is true");
    return request;
}

const char* openai_finish_reason(infer::FinishReason reason) {
    return reason == infer::FinishReason::Stop ? "stop" : "length";
}

std::string new_response_id(Endpoint endpoint) {
    thread_local std::mt19937_64 random{std::random_device{}()};
    return fmt::format("{}{:016x}{:08x}", endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-", random(),
                       static_cast<std::uint32_t>(random()));
}

namespace {

json envelope(const char* object, const ReplyHeader& header) {
    return {{"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model}};
}

json usage_json(const Usage& usage) {
    return {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

json chat_chunk(const ReplyHeader& header, json delta, json finish_reason) {
    json chunk = envelope("chat.completion.chunk", header);
    chunk["choices"] = json::array(
        {{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", std::move(finish_reason)}}});
    return chunk;
}

json text_completion_chunk(const ReplyHeader& header, std::string_view text, json finish_reason) {
    json chunk = envelope("text_completion", header);
    chunk["choices"] = json::array(
        {{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", std::move(finish_reason)}}});
    return chunk;
}

}  // namespace

json completion_object(Endpoint endpoint, const ReplyHeader& header, const std::string& text, infer::FinishReason reason,
                       const Usage& usage) {
    const char* finish = openai_finish_reason(reason);
    json object;
    if (endpoint == Endpoint::ChatCompletions) {
        object = envelope("chat.completion", header);
        object["choices"] = json::array({{{"index", 0},
                                          {"message", {{"role", "assistant"}, {"content", text}}},
                                          {"logprobs", nullptr},
                                          {"finish_reason", finish}}});
    } else {
        object = text_completion_chunk(header, text, finish);
    }
    object["usage"] = usage_json(usage);
    return object;
}

json role_chunk(const ReplyHeader& header) { return chat_chunk(header, {{"role", "assistant"}, {"content", ""}}, nullptr); }

json text_chunk(Endpoint endpoint, const ReplyHeader& header, std::string_view text) {
    if (endpoint == Endpoint::ChatCompletions) return chat_chunk(header, {{"content", text}}, nullptr);
    return text_completion_chunk(header, text, nullptr);
}

json finish_chunk(Endpoint endpoint, const ReplyHeader& header, infer::FinishReason reason) {
    const char* finish = openai_finish_reason(reason);
    if (endpoint == Endpoint::ChatCompletions) return chat_chunk(header, json::object(), finish);
    return text_completion_chunk(header, "", finish);
}

json usage_chunk(Endpoint endpoint, const ReplyHeader& header, const Usage& usage) {
    json chunk = envelope(endpoint == Endpoint::ChatCompletions ? "chat.completion.chunk" : "text_completion", header);
    chunk["choices"] = json::array();
    chunk["usage"] = usage_json(usage);
    return chunk;
}

std::string sse_event(const json& data) { return "data: " + dump(data) + "\n\n"; }

json error_object(const ApiError& error) {
    const auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
    return {{"error",
             {{"message", error.what()}, {"type", error.type}, {"param", or_null(error.param)}, {"code", or_null(error.code)}}}};
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace kindred::serve
