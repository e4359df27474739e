// bench/serve/load_client.cpp — N concurrent clients send chat completions to an OpenAI-compatible
// server on loopback for a bounded time (and at most a bounded number of requests), then print
// one JSON line: requests, failures, completion tokens, aggregate completion tokens/s over the wall
// time, and latency percentiles. Every client sends the same sequence of prompts with its own seeds,
// so two servers get the same load.
//   kindred_bench_serve_load PORT MODEL [CLIENTS=16] [SECONDS=60] [MAX_TOKENS=64] [MAX_REQUESTS=100000]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

const char* const kPrompts[] = {
    "I failed my driving test today and I feel stupid.",
    "My best friend is moving to another country next month.",
    "I finally finished the marathon I trained a year for!",
    "My cat has been sick all week and I am worried.",
    "I got into the university I wanted.",
    "My coworker took credit for my idea in a meeting.",
    "I can't sleep because I keep thinking about my exam.",
    "My grandmother turned ninety today.",
};

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0.0;
    std::sort(values.begin(), values.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s PORT MODEL [CLIENTS] [SECONDS] [MAX_TOKENS] [MAX_REQUESTS]\n", argv[0]);
        return 2;
    }
    const int port = std::stoi(argv[1]);
    const std::string model = argv[2];
    const int clients = argc > 3 ? std::stoi(argv[3]) : 16;
    const double seconds = argc > 4 ? std::stod(argv[4]) : 60.0;
    const int max_tokens = argc > 5 ? std::stoi(argv[5]) : 64;
    const long max_requests = argc > 6 ? std::stol(argv[6]) : 100000;

    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration<double>(seconds);
    std::atomic<long> issued{0};
    std::mutex mutex;
    std::vector<double> latencies;
    long failures = 0, completion_tokens = 0, prompt_tokens = 0;
    // The first few failures in full, with when they happened: an intermittent transport error
    // is only explicable from its time and neighbours.
    constexpr std::size_t kFailuresShown = 10;
    std::vector<std::string> failure_details;
    const auto record_failure = [&](int client, long request, double sent_at, double latency, std::string what) {
        ++failures;
        if (failure_details.size() < kFailuresShown)
            failure_details.push_back(fmt::format("client {} request {} sent at {:.3f} s, after {:.3f} s: {}", client,
                                                  request, sent_at, latency, what));
    };

    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            httplib::Client client("127.0.0.1", port);
            client.set_read_timeout(600, 0);
            for (long i = 0; Clock::now() < deadline && issued++ < max_requests; ++i) {
                const nlohmann::json body = {
                    {"model", model},
                    {"messages", {{{"role", "user"}, {"content", kPrompts[(c + i) % std::size(kPrompts)]}}}},
                    {"max_tokens", max_tokens},
                    {"temperature", 0.8},
                    {"top_k", 40},
                    {"top_p", 0.95},
                    {"min_p", 0.05},
                    {"seed", c * 100000 + i}};
                const auto sent = Clock::now();
                const auto reply = client.Post("/v1/chat/completions", body.dump(), "application/json");
                const double latency = std::chrono::duration<double>(Clock::now() - sent).count();
                const double sent_at = std::chrono::duration<double>(sent - start).count();
                std::lock_guard lock(mutex);
                if (!reply || reply->status != 200) {
                    record_failure(c, i, sent_at, latency,
                                   reply ? fmt::format("HTTP {}: {}", reply->status, reply->body.substr(0, 200))
                                         : "transport error " + httplib::to_string(reply.error()));
                    continue;
                }
                const auto json = nlohmann::json::parse(reply->body, nullptr, false);
                if (json.is_discarded() || !json.contains("usage")) {
                    record_failure(c, i, sent_at, latency, "reply without usage: " + reply->body.substr(0, 200));
                    continue;
                }
                latencies.push_back(latency);
                completion_tokens += json["usage"]["completion_tokens"].get<long>();
                prompt_tokens += json["usage"]["prompt_tokens"].get<long>();
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const nlohmann::json report = {
        {"clients", clients},
        {"seconds", wall},
        {"requests", latencies.size() + static_cast<std::size_t>(failures)},
        {"failures", failures},
        {"completion_tokens", completion_tokens},
        {"prompt_tokens", prompt_tokens},
        {"tokens_per_second", static_cast<double>(completion_tokens) / wall},
        {"latency_p50_s", percentile(latencies, 0.50)},
        {"latency_p95_s", percentile(latencies, 0.95)},
        {"failure_details", failure_details},
    };
    std::printf("%s\n", report.dump().c_str());
    return failures == 0 ? 0 : 1;
}
