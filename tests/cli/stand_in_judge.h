// tests/cli/stand_in_judge.h — a judge endpoint for end-to-end tests: an OpenAI-compatible
// `POST /v1/chat/completions` on 127.0.0.1 (tests/local_http_server.h) whose answer is the test's
// deterministic function of the last message and of how often that message was answered, and
// which records every prompt it answered. It can kill the client (SIGKILL) while a given request
// is in flight; that request is never answered, so a resumed client asks it as its first time.
// Usage counts are a quarter of the characters, as a tokenizer would report roughly.
#pragma once

#include <signal.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "local_http_server.h"

namespace kindred::testing {

// FNV-1a: a stable hash for stand-in answers.
inline std::uint64_t stand_in_hash(const std::string& text) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (const char c : text) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    return hash;
}

class StandInJudge {
public:
    // answer(prompt, attempt): the reply's content; attempt is 1 the first time a prompt is answered.
    using Answer = std::function<std::string(const std::string& prompt, int attempt)>;

    explicit StandInJudge(Answer answer) : answer_(std::move(answer)) {
        server_.routes().Post("/v1/chat/completions", [this](const httplib::Request& request, httplib::Response& response) {
            const auto body = nlohmann::json::parse(request.body);
            const std::string prompt = body.at("messages").back().at("content").get<std::string>();
            int attempt = 0;
            {
                std::lock_guard lock(mutex_);
                if (kill_at_ > 0 && ++requests_ == kill_at_ && victim_ > 0) {
                    ::kill(victim_, SIGKILL);  // the client dies with this call in flight
                    response.status = 503;
                    return;
                }
                attempt = ++asked_[prompt];
                answered_.push_back(prompt);
            }
            const std::string content = answer_(prompt, attempt);
            const nlohmann::json reply = {
                {"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}, {"finish_reason", "stop"}}}},
                {"usage", {{"prompt_tokens", prompt.size() / 4}, {"completion_tokens", content.size() / 4}}}};
            response.set_content(reply.dump(), "application/json");
        });
        server_.start();
    }

    std::string url() const { return server_.url("/v1"); }
    // The n-th request (from 1) kills `victim` instead of being answered.
    void kill_on_request(int n, pid_t victim) {
        std::lock_guard lock(mutex_);
        kill_at_ = n;
        victim_ = victim;
    }
    std::vector<std::string> answered() {
        std::lock_guard lock(mutex_);
        return answered_;
    }

private:
    Answer answer_;
    LocalHttpServer server_;
    std::mutex mutex_;
    std::map<std::string, int> asked_;
    std::vector<std::string> answered_;
    int requests_ = 0;
    int kill_at_ = 0;
    pid_t victim_ = 0;
};

}  // namespace kindred::testing
