// net/openai_chat.cpp — request bodies, response parsing and counters (see openai_chat.h).
#include "net/openai_chat.h"

#include "core/error.h"
#include "core/json.h"

namespace kindred::net {
namespace {

using nlohmann::json;

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::int64_t usage_count(const json& usage, const char* key, const std::string& source) {
    const auto it = usage.find(key);
    if (it == usage.end() || it->is_null()) return -1;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0)
        fail("{}: usage.{} is {}, expected a non-negative integer", source, key, it->dump());
    return it->get<std::int64_t>();
}

// The server's own words for a failed call: OpenAI's error object, else the start of the body.
std::string error_message(const std::string& body) {
    try {
        const json parsed = parse_json(body, "response");
        if (parsed.is_object() && parsed.contains("error")) {
            const json& error = parsed["error"];
            if (error.is_object() && error.contains("message") && error["message"].is_string())
                return error["message"].get<std::string>();
            if (error.is_string()) return error.get<std::string>();
        }
    } catch (const Error&) {
    }
    return body.substr(0, 300);
}

}  // namespace

json chat_request_body(const std::string& model, const ChatCompletionRequest& request) {
    json body = json::object();
    body["model"] = model;
    json messages = json::array();
    for (const ChatTurn& turn : request.messages) messages.push_back({{"role", turn.role}, {"content", turn.content}});
    body["messages"] = std::move(messages);
    if (request.temperature) body["temperature"] = *request.temperature;
    if (request.top_p) body["top_p"] = *request.top_p;
    if (request.min_p) body["min_p"] = *request.min_p;
    if (request.max_tokens) body["max_tokens"] = *request.max_tokens;
    if (request.seed) body["seed"] = *request.seed;
    if (!request.stop.empty()) body["stop"] = request.stop;
    if (!request.extra.is_object()) fail("chat request: extra fields must be a JSON object, got {}", request.extra.dump());
    for (const auto& [key, value] : request.extra.items()) body[key] = value;
    return body;
}

ChatCompletion parse_chat_completion(const std::string& body, const std::string& source) {
    const json parsed = parse_json(body, source);
    if (!parsed.is_object()) fail("{}: a chat completion must be a JSON object", source);
    const auto choices = parsed.find("choices");
    if (choices == parsed.end() || !choices->is_array() || choices->empty())
        fail("{}: no 'choices' in the chat completion", source);
    const json& choice = (*choices)[0];
    if (!choice.is_object()) fail("{}: choices[0] is not an object", source);
    const auto message = choice.find("message");
    if (message == choice.end() || !message->is_object()) fail("{}: choices[0] has no 'message' object", source);
    ChatCompletion completion;
    const auto content = message->find("content");
    if (content != message->end() && !content->is_null()) {
        if (!content->is_string()) fail("{}: choices[0].message.content is {}, expected a string", source, content->type_name());
        completion.content = content->get<std::string>();
    }
    const auto finish = choice.find("finish_reason");
    if (finish != choice.end() && finish->is_string()) completion.finish_reason = finish->get<std::string>();
    const auto model = parsed.find("model");
    if (model != parsed.end() && model->is_string()) completion.model = model->get<std::string>();
    const auto usage = parsed.find("usage");
    if (usage != parsed.end() && !usage->is_null()) {
        if (!usage->is_object()) fail("{}: 'usage' is not an object", source);
        completion.prompt_tokens = usage_count(*usage, "prompt_tokens", source);
        completion.completion_tokens = usage_count(*usage, "completion_tokens", source);
    }
    return completion;
}

ChatClient::ChatClient(ChatEndpoint endpoint) : endpoint_(std::move(endpoint)) {
    if (endpoint_.base_url.empty()) fail("chat endpoint: the URL is empty");
    if (endpoint_.model.empty()) fail("chat endpoint {}: no model name given", endpoint_.base_url);
    url_ = endpoint_.base_url;
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    if (!ends_with(url_, "/chat/completions")) url_ += "/chat/completions";
    if (!endpoint_.api_key.empty()) endpoint_.http.headers.push_back("Authorization: Bearer " + endpoint_.api_key);
}

ChatCompletion ChatClient::complete(const ChatCompletionRequest& request) {
    try {
        const HttpResponse response =
            http_post(url_, chat_request_body(endpoint_.model, request).dump(), "application/json", endpoint_.http);
        if (!response.ok()) fail("POST {}: HTTP {}: {}", url_, response.status, error_message(response.body));
        ChatCompletion completion = parse_chat_completion(response.body, url_);
        completed_calls_.fetch_add(1);
        if (completion.prompt_tokens > 0) prompt_tokens_.fetch_add(completion.prompt_tokens);
        if (completion.completion_tokens > 0) completion_tokens_.fetch_add(completion.completion_tokens);
        return completion;
    } catch (const Error&) {
        failed_calls_.fetch_add(1);
        throw;
    }
}

ChatUsage ChatClient::usage() const {
    ChatUsage usage;
    usage.completed_calls = completed_calls_.load();
    usage.failed_calls = failed_calls_.load();
    usage.prompt_tokens = prompt_tokens_.load();
    usage.completion_tokens = completion_tokens_.load();
    usage.cost_usd = (static_cast<double>(usage.prompt_tokens) * endpoint_.input_price_per_million +
                      static_cast<double>(usage.completion_tokens) * endpoint_.output_price_per_million) /
                     1e6;
    return usage;
}

}  // namespace kindred::net
