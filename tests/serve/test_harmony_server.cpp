// The server's chat replies for gpt-oss go through harmony (infer/harmony.h) like `kindred chat`:
// on tests/goldens/inference/tiny-gptoss-chat.gguf (random weights, which never open harmony's
// final channel) a chat completion shows nothing of the tokens it generated, while the raw
// completions endpoint, which continues text, shows them.
#include <gtest/gtest.h>

#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "infer/loaded_model.h"
#include "serve/server.h"
#include "test_paths.h"

namespace kindred::serve {
namespace {

using nlohmann::json;

TEST(HarmonyServer, ChatShowsOnlyTheFinalChannelCompletionsShowText) {
    const auto model = infer::LoadedModel::open(kindred::testing::source_path("tests/goldens/inference/tiny-gptoss-chat.gguf"));
    ASSERT_TRUE(model->harmony());
    EngineOptions engine;
    engine.slots = 1;
    engine.context = 512;  // the harmony system prompt alone is 253 tokens here
    ServerOptions options;
    options.port = 0;
    options.log_requests = false;
    Server server(*model, {}, engine, options);
    const int port = server.bind();
    std::thread listener([&] { server.listen(); });
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60, 0);

    const json chat = {{"model", server.base_name()},
                       {"messages", {{{"role", "user"}, {"content", "hello there"}}}},
                       {"max_tokens", 12},
                       {"temperature", 0}};
    const auto chat_reply = client.Post("/v1/chat/completions", chat.dump(), "application/json");
    const json raw = {{"model", server.base_name()}, {"prompt", "hello there"}, {"max_tokens", 12}, {"temperature", 0}};
    const auto raw_reply = client.Post("/v1/completions", raw.dump(), "application/json");
    server.shutdown();
    listener.join();

    ASSERT_TRUE(chat_reply && chat_reply->status == 200) << (chat_reply ? chat_reply->body : "no reply");
    const json chat_body = json::parse(chat_reply->body);
    EXPECT_EQ(chat_body["usage"]["completion_tokens"], 12) << chat_body.dump();
    EXPECT_EQ(chat_body["choices"][0]["message"]["content"], "");
    ASSERT_TRUE(raw_reply && raw_reply->status == 200) << (raw_reply ? raw_reply->body : "no reply");
    const json raw_body = json::parse(raw_reply->body);
    EXPECT_EQ(raw_body["usage"]["completion_tokens"], 12);
    EXPECT_NE(raw_body["choices"][0]["text"], "");
}

}  // namespace
}  // namespace kindred::serve
