// Tests of net/openai_chat.h: request bodies, response parsing, errors and counters, against a
// local stand-in endpoint.
#include "net/openai_chat.h"

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "error_of.h"
#include "local_http_server.h"
#include "malformed_corpus.h"
#include "test_paths.h"

namespace kindred::net {
namespace {

using kindred::testing::LocalHttpServer;
using nlohmann::json;
using kindred::testing::error_of;

TEST(OpenAiChat, RequestBodyCarriesMessagesSettingsAndExtraFields) {
    ChatCompletionRequest request;
    request.messages = {{"system", "be kind"}, {"user", "hi"}};
    request.temperature = 0.7;
    request.min_p = 0.1;
    request.max_tokens = 64;
    request.stop = {"\n\n"};
    request.extra = {{"top_k", 40}, {"temperature", 0.2}};
    const json body = chat_request_body("judge", request);
    EXPECT_EQ(body["model"], "judge");
    EXPECT_EQ(body["messages"], json::parse(R"([{"role":"system","content":"be kind"},{"role":"user","content":"hi"}])"));
    EXPECT_EQ(body["min_p"], 0.1);
    EXPECT_EQ(body["max_tokens"], 64);
    EXPECT_EQ(body["stop"], json::array({"\n\n"}));
    EXPECT_EQ(body["top_k"], 40);
    EXPECT_EQ(body["temperature"], 0.2);  // extra fields win
    EXPECT_FALSE(body.contains("top_p"));
    EXPECT_FALSE(body.contains("seed"));
}

TEST(OpenAiChat, ParsesContentFinishReasonAndUsage) {
    const ChatCompletion completion = parse_chat_completion(
        R"({"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}})",
        "reply");
    EXPECT_EQ(completion.content, "hello");
    EXPECT_EQ(completion.finish_reason, "stop");
    EXPECT_EQ(completion.model, "m1");
    EXPECT_EQ(completion.prompt_tokens, 12);
    EXPECT_EQ(completion.completion_tokens, 3);
    const ChatCompletion bare = parse_chat_completion(R"({"choices":[{"message":{"content":null}}]})", "reply");
    EXPECT_EQ(bare.content, "");
    EXPECT_EQ(bare.prompt_tokens, -1);
}

TEST(OpenAiChat, MalformedResponsesAreErrorsNamingTheSource) {
    for (const char* body : {"not json", "[]", "{}", R"({"choices":[]})", R"({"choices":[1]})",
                             R"({"choices":[{"text":"legacy"}]})", R"({"choices":[{"message":{"content":5}}]})",
                             R"({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-1}})",
                             R"({"choices":[{"message":{"content":"x"}}],"usage":"lots"})"}) {
        const std::string message = error_of([&] { parse_chat_completion(body, "judge-reply"); });
        EXPECT_EQ(message.rfind("judge-reply", 0), 0u) << body << " -> " << message;
    }
}

class StandInEndpoint : public ::testing::Test {
protected:
    void SetUp() override {
        server_.routes().Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
            ++hits_;
            authorization_ = req.get_header_value("Authorization");
            const json body = json::parse(req.body);
            if (body["model"] != "kind-judge") {
                res.status = 404;
                res.set_content(R"({"error":{"message":"model 'x' not found","type":"invalid_request_error"}})",
                                "application/json");
                return;
            }
            const std::string last = body["messages"].back()["content"];
            res.set_content(json{{"model", "kind-judge"},
                                 {"choices", {{{"message", {{"role", "assistant"}, {"content", "echo: " + last}}},
                                               {"finish_reason", "stop"}}}},
                                 {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 4}}}}
                                .dump(),
                            "application/json");
        });
        server_.start();
        endpoint_.base_url = server_.url("/v1");
        endpoint_.model = "kind-judge";
        endpoint_.http.sleep = [](double) {};
    }

    LocalHttpServer server_;
    ChatEndpoint endpoint_;
    std::atomic<int> hits_{0};
    std::string authorization_;
};

TEST_F(StandInEndpoint, CompletesAndCountsTokensAndCost) {
    endpoint_.api_key = "sk-test";
    endpoint_.input_price_per_million = 3.0;
    endpoint_.output_price_per_million = 15.0;
    ChatClient client(endpoint_);
    EXPECT_EQ(client.url(), server_.url("/v1/chat/completions"));
    ChatCompletionRequest request;
    request.messages = {{"user", "how are you?"}};
    EXPECT_EQ(client.complete(request).content, "echo: how are you?");
    EXPECT_EQ(authorization_, "Bearer sk-test");
    EXPECT_EQ(client.complete(request).completion_tokens, 4);
    const ChatUsage usage = client.usage();
    EXPECT_EQ(usage.completed_calls, 2);
    EXPECT_EQ(usage.failed_calls, 0);
    EXPECT_EQ(usage.prompt_tokens, 20);
    EXPECT_EQ(usage.completion_tokens, 8);
    EXPECT_DOUBLE_EQ(usage.cost_usd, (20 * 3.0 + 8 * 15.0) / 1e6);
}

TEST_F(StandInEndpoint, AFullChatCompletionsUrlIsUsedAsGiven) {
    endpoint_.base_url = server_.url("/v1/chat/completions/");
    ChatClient client(endpoint_);
    EXPECT_EQ(client.url(), server_.url("/v1/chat/completions"));
}

TEST_F(StandInEndpoint, ServerErrorsCarryTheServersMessageAndCountAsFailed) {
    endpoint_.model = "unknown-model";
    ChatClient client(endpoint_);
    ChatCompletionRequest request;
    request.messages = {{"user", "hi"}};
    const std::string message = error_of([&] { client.complete(request); });
    EXPECT_NE(message.find(server_.url("/v1/chat/completions")), std::string::npos) << message;
    EXPECT_NE(message.find("HTTP 404"), std::string::npos) << message;
    EXPECT_NE(message.find("model 'x' not found"), std::string::npos) << message;
    EXPECT_EQ(client.usage().failed_calls, 1);
    EXPECT_EQ(hits_.load(), 1);  // a 404 is not retried
}

TEST_F(StandInEndpoint, CountersAreExactUnderConcurrentCalls) {
    ChatClient client(endpoint_);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            ChatCompletionRequest request;
            request.messages = {{"user", "hi"}};
            for (int i = 0; i < 5; ++i) client.complete(request);
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(client.usage().completed_calls, 20);
    EXPECT_EQ(client.usage().prompt_tokens, 200);
}

// Every file of tests/corpus/chat-completion-malformed (hand-made cases, and inputs the fuzzer
// once crashed or hung on, fuzz/fuzz_chat_completion.cpp) must yield an Error naming the source
// and holding the phrase EXPECTED.json gives for it.
TEST(OpenAiChat, EveryMalformedResponseInTheCorpusIsRefusedWithItsPhrase) {
    kindred::testing::expect_every_corpus_file_refused(
        kindred::testing::source_path("tests/corpus/chat-completion-malformed"),
        [](const std::filesystem::path& file, const std::string& name) {
            parse_chat_completion(kindred::testing::read_corpus_bytes(file), name);
        });
}

TEST(OpenAiChat, EndpointNeedsAUrlAndAModel) {
    EXPECT_THROW(ChatClient(ChatEndpoint{}), Error);
    ChatEndpoint endpoint;
    endpoint.base_url = "http://127.0.0.1:1/v1";
    EXPECT_NE(error_of([&] { ChatClient client(endpoint); }).find("no model name"), std::string::npos);
}

}  // namespace
}  // namespace kindred::net
