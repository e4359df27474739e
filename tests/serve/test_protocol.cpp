// serve/protocol: request bodies to GenerationRequests (every field, every refusal with its
// status and param) and the response, chunk and error objects in OpenAI's shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "malformed_corpus.h"
#include "serve/protocol.h"
#include "test_paths.h"

namespace kindred::serve {
namespace {

using nlohmann::json;

RequestLimits limits() {
    RequestLimits l;
    l.max_messages = 4;
    l.max_tokens = 100;
    l.vocab_size = 1000;
    return l;
}

GenerationRequest chat(const json& body) { return parse_request(body.dump(), Endpoint::ChatCompletions, limits()); }

json with(json body, const std::string& key, json value) {
    body[key] = std::move(value);
    return body;
}

const json kMinimal = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};

// The ApiError a body raises, or a test failure when it parses.
ApiError refusal(const std::string& body, Endpoint endpoint = Endpoint::ChatCompletions) {
    try {
        parse_request(body, endpoint, limits());
    } catch (const ApiError& error) {
        return error;
    }
    ADD_FAILURE() << "accepted: " << body;
    return ApiError(0, "", "", "", "");
}

TEST(Protocol, MinimalChatTakesDefaults) {
    const GenerationRequest r = chat(kMinimal);
    EXPECT_EQ(r.model, "m");
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_EQ(r.messages[0].role, "user");
    EXPECT_EQ(r.messages[0].content, "Hi");
    EXPECT_EQ(r.max_tokens, 100);  // the limit is the default
    EXPECT_FALSE(r.seed_given);
    EXPECT_FALSE(r.stream);
    const infer::SamplingParams defaults;
    EXPECT_EQ(r.sampling.temperature, defaults.temperature);
    EXPECT_EQ(r.sampling.top_k, defaults.top_k);
    EXPECT_EQ(r.sampling.min_p, defaults.min_p);
}

TEST(Protocol, EveryFieldIsRead) {
    json body = kMinimal;
    body["messages"] = {{{"role", "system"}, {"content", "Be kind."}},
                        {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}, {"name", "x"}},
                        {{"role", "assistant"}, {"content", "ok"}},
                        {{"role", "developer"}, {"content", "d"}}};
    body.update({{"temperature", 0.5}, {"top_p", 0.9}, {"min_p", 0.1}, {"top_k", 7}, {"max_tokens", 12},
                 {"max_completion_tokens", 12}, {"stop", {"x", "yz"}}, {"seed", -1}, {"n", 1},
                 {"logit_bias", {{"5", -100}, {"17", 2.5}}}, {"presence_penalty", 0.5}, {"frequency_penalty", -0.5},
                 {"repetition_penalty", 1.1}, {"repeat_last_n", 32}, {"stream", true},
                 {"stream_options", {{"include_usage", true}}}, {"user", "u"}, {"tools", json::array()},
                 {"response_format", {{"type", "text"}}}, {"logprobs", false}, {"top_logprobs", nullptr}});
    const GenerationRequest r = chat(body);
    ASSERT_EQ(r.messages.size(), 4u);
    EXPECT_EQ(r.messages[1].content, "a\nb");
    EXPECT_EQ(r.messages[3].role, "developer");
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
    EXPECT_EQ(r.sampling.top_k, 7);
    EXPECT_EQ(r.max_tokens, 12);
    EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "yz"}));
    EXPECT_TRUE(r.seed_given);
    EXPECT_EQ(r.sampling.seed, ~std::uint64_t{0});  // -1 in two's complement
    auto biases = r.sampling.logit_bias;
    std::sort(biases.begin(), biases.end());
    EXPECT_EQ(biases, (std::vector<std::pair<std::int32_t, float>>{{5, -100.0f}, {17, 2.5f}}));
    EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -0.5f);
    EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.1f);
    EXPECT_EQ(r.sampling.repeat_last_n, 32);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
}

// A budget above the server's limit is capped at it (the reply's finish_reason and usage show it).
TEST(Protocol, MaxTokensAboveTheLimitIsCapped) {
    EXPECT_EQ(chat(with(kMinimal, "max_tokens", 12000)).max_tokens, 100);
    EXPECT_EQ(chat(with(kMinimal, "max_completion_tokens", 100)).max_tokens, 100);
    EXPECT_EQ(chat(with(kMinimal, "max_tokens", 99)).max_tokens, 99);
}

TEST(Protocol, NullMeansNotGiven) {
    const GenerationRequest r = chat(with(with(kMinimal, "temperature", nullptr), "stop", nullptr));
    EXPECT_EQ(r.sampling.temperature, infer::SamplingParams{}.temperature);
    EXPECT_TRUE(r.stop.empty());
}

TEST(Protocol, CompletionsPrompt) {
    const json body = {{"model", "m"}, {"prompt", "Once upon"}, {"max_tokens", 3}, {"echo", false}};
    const GenerationRequest r = parse_request(body.dump(), Endpoint::Completions, limits());
    EXPECT_EQ(r.prompt, "Once upon");
    EXPECT_EQ(r.max_tokens, 3);
    EXPECT_EQ(parse_request(R"({"model":"m","prompt":["one"]})", Endpoint::Completions, limits()).prompt, "one");
    EXPECT_EQ(refusal(R"({"model":"m","prompt":["a","b"]})", Endpoint::Completions).param, "prompt");
    EXPECT_EQ(refusal(R"({"model":"m","prompt":[1,2]})", Endpoint::Completions).param, "prompt");
    // Each endpoint has its own input field.
    EXPECT_EQ(refusal(R"({"model":"m","messages":[{"role":"user","content":"x"}]})", Endpoint::Completions).param, "messages");
    EXPECT_EQ(refusal(R"({"model":"m","prompt":"x"})").param, "prompt");
    EXPECT_EQ(refusal(R"({"model":"m","prompt":"x","echo":true})", Endpoint::Completions).param, "echo");
}

// Each malformed body is a 400 naming the field at fault.
TEST(Protocol, RefusalsNameTheField) {
    const auto param_of = [](const json& body) { return refusal(body.dump()).param; };
    const auto status_of = [](const json& body) { return refusal(body.dump()).status; };
    EXPECT_EQ(refusal("{").status, 400);
    EXPECT_EQ(refusal("[]").status, 400);
    EXPECT_EQ(refusal(R"({"model":"m","model":"n","messages":[]})").status, 400);  // duplicate key
    EXPECT_EQ(refusal(std::string(20, '[') + std::string(20, ']')).status, 400);      // nesting bound
    EXPECT_EQ(param_of({{"messages", kMinimal["messages"]}}), "model");
    EXPECT_EQ(param_of({{"model", "m"}}), "messages");
    EXPECT_EQ(param_of(with(kMinimal, "model", 3)), "model");
    EXPECT_EQ(param_of(with(kMinimal, "messages", json::array())), "messages");
    EXPECT_EQ(param_of(with(kMinimal, "messages", json::array({1}))), "messages[0]");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"content", "x"}}})), "messages[0].role");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"role", "user"}}})), "messages[0].content");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"role", "tool"}, {"content", "x"}}})), "messages[0].role");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"role", "user"}, {"content", 5}}})), "messages[0].content");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"text", "x"}}}}}})),
              "messages[0].content[0].type");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"role", "user"}, {"content", "x"}, {"tool_calls", json::array()}}})),
              "messages[0].tool_calls");
    EXPECT_EQ(param_of(with(kMinimal, "messages", {{{"role", "user"}, {"content", "x"}, {"extra", 1}}})),
              "messages[0].extra");
    json five = kMinimal;
    for (int i = 0; i < 4; ++i) five["messages"].push_back(kMinimal["messages"][0]);
    EXPECT_EQ(param_of(five), "messages");  // over max_messages
    EXPECT_EQ(param_of(with(kMinimal, "temperature", 2.5)), "temperature");
    EXPECT_EQ(param_of(with(kMinimal, "temperature", "hot")), "temperature");
    EXPECT_EQ(param_of(with(kMinimal, "temperature", true)), "temperature");
    EXPECT_EQ(param_of(with(kMinimal, "top_p", 0)), "top_p");
    EXPECT_EQ(param_of(with(kMinimal, "top_p", 1.5)), "top_p");
    EXPECT_EQ(param_of(with(kMinimal, "min_p", -0.1)), "min_p");
    EXPECT_EQ(param_of(with(kMinimal, "top_k", -1)), "top_k");
    EXPECT_EQ(param_of(with(kMinimal, "top_k", 1.5)), "top_k");
    EXPECT_EQ(param_of(with(kMinimal, "max_tokens", 0)), "max_tokens");
    EXPECT_EQ(param_of(with(kMinimal, "max_tokens", -3)), "max_tokens");
    EXPECT_EQ(param_of(with(kMinimal, "max_completion_tokens", 1e30)), "max_completion_tokens");
    EXPECT_EQ(param_of(with(with(kMinimal, "max_tokens", 5), "max_completion_tokens", 6)), "max_completion_tokens");
    EXPECT_EQ(param_of(with(kMinimal, "stop", json::array({"a", "b", "c", "d", "e"}))), "stop");
    EXPECT_EQ(param_of(with(kMinimal, "stop", "")), "stop");
    EXPECT_EQ(param_of(with(kMinimal, "stop", json::array({1}))), "stop[0]");
    EXPECT_EQ(param_of(with(kMinimal, "seed", 1.5)), "seed");
    EXPECT_EQ(param_of(with(kMinimal, "n", 2)), "n");
    EXPECT_EQ(param_of(with(kMinimal, "logit_bias", {{"abc", 1}})), "logit_bias.abc");
    EXPECT_EQ(param_of(with(kMinimal, "logit_bias", {{"1000", 1}})), "logit_bias.1000");  // outside the vocabulary
    EXPECT_EQ(param_of(with(kMinimal, "logit_bias", {{"-1", 1}})), "logit_bias.-1");
    EXPECT_EQ(param_of(with(kMinimal, "logit_bias", {{"3", 101}})), "logit_bias.3");
    EXPECT_EQ(param_of(with(kMinimal, "presence_penalty", 3)), "presence_penalty");
    EXPECT_EQ(param_of(with(kMinimal, "frequency_penalty", -3)), "frequency_penalty");
    EXPECT_EQ(param_of(with(kMinimal, "repeat_penalty", 0)), "repeat_penalty");
    EXPECT_EQ(param_of(with(kMinimal, "repeat_last_n", -2)), "repeat_last_n");
    EXPECT_EQ(param_of(with(kMinimal, "stream", "yes")), "stream");
    EXPECT_EQ(param_of(with(kMinimal, "stream_options", {{"include_usage", true}})), "stream_options");  // without stream
    EXPECT_EQ(param_of(with(with(kMinimal, "stream", true), "stream_options", {{"x", true}})), "stream_options.x");
    EXPECT_EQ(param_of(with(kMinimal, "tools", json::array({{{"type", "function"}}}))), "tools");
    EXPECT_EQ(param_of(with(kMinimal, "tool_choice", "auto")), "tool_choice");
    EXPECT_EQ(param_of(with(kMinimal, "response_format", {{"type", "json_object"}})), "response_format");
    EXPECT_EQ(param_of(with(kMinimal, "logprobs", true)), "logprobs");
    EXPECT_EQ(param_of(with(kMinimal, "temprature", 0.5)), "temprature");  // unrecognized
    EXPECT_EQ(status_of(with(kMinimal, "temprature", 0.5)), 400);
    EXPECT_EQ(refusal(with(kMinimal, "temprature", 0.5).dump()).type, "invalid_request_error");
}

TEST(Protocol, KindredExtension) {
    EXPECT_FALSE(chat(kMinimal).kindred.controller);
    EXPECT_TRUE(chat(kMinimal).kindred.style.empty());
    const GenerationRequest styled = chat(with(kMinimal, "kindred", {{"style", "<tone:warm>"}}));
    EXPECT_FALSE(styled.kindred.controller);
    EXPECT_EQ(styled.kindred.style, "<tone:warm>");
    const GenerationRequest r = chat(with(kMinimal, "kindred",
                                          {{"controller", true}, {"style", "<tone:warm><persona:best_friend>"}, {"reflection", false},
                                           {"safety", false}, {"memory", false}, {"repairs", 0}}));
    EXPECT_TRUE(r.kindred.controller);
    EXPECT_EQ(r.kindred.style, "<tone:warm><persona:best_friend>");
    EXPECT_FALSE(r.kindred.reflection);
    EXPECT_FALSE(r.kindred.safety);
    EXPECT_FALSE(r.kindred.memory);
    EXPECT_EQ(r.kindred.repairs, 0);
    const KindredOptions defaults = chat(with(kMinimal, "kindred", {{"controller", true}})).kindred;
    EXPECT_TRUE(defaults.reflection && defaults.safety && defaults.memory);
    EXPECT_EQ(defaults.repairs, 2);

    const ApiError unknown = refusal(with(kMinimal, "kindred", {{"controller", true}, {"reflexion", false}}).dump());
    EXPECT_EQ(unknown.status, 400);
    EXPECT_EQ(unknown.param, "kindred.reflexion");
    EXPECT_NE(std::string(unknown.what()).find("'kindred.reflexion': unrecognized field"), std::string::npos) << unknown.what();
    EXPECT_EQ(refusal(with(kMinimal, "kindred", "on").dump()).param, "kindred");
    EXPECT_EQ(refusal(with(kMinimal, "kindred", {{"memory", false}}).dump()).param, "kindred.memory");  // without the controller
    EXPECT_EQ(refusal(with(kMinimal, "kindred", {{"controller", true}, {"repairs", -1}}).dump()).param, "kindred.repairs");
    EXPECT_EQ(refusal(with(kMinimal, "kindred", {{"controller", 1}}).dump()).param, "kindred.controller");
    EXPECT_EQ(refusal(with(kMinimal, "kindred", {{"style", std::string(300, 'x')}}).dump()).param, "kindred.style");
    EXPECT_EQ(refusal(json({{"model", "m"}, {"prompt", "Hi"}, {"kindred", {{"controller", true}}}}).dump(), Endpoint::Completions).param,
              "kindred");
}

// tests/corpus/request-malformed (tools/make_malformed_requests.py): every file is a 400 whose
// message starts as EXPECTED.json says, after the field it names, under the server's default limits.
TEST(Protocol, MalformedCorpus) {
    RequestLimits defaults;
    defaults.vocab_size = 49152;
    kindred::testing::expect_every_corpus_file_refused(
        kindred::testing::source_path("tests/corpus/request-malformed"),
        [&](const std::filesystem::path& file, const std::string& name) {
            const Endpoint endpoint = name.starts_with("completions_") ? Endpoint::Completions : Endpoint::ChatCompletions;
            try {
                parse_request(kindred::testing::read_corpus_bytes(file), endpoint, defaults);
            } catch (const ApiError& error) {
                EXPECT_EQ(error.status, 400);
                throw Error(fmt::format("{}: param {}: {}", name, error.param.empty() ? "-" : error.param, error.what()));
            }
        });
}

TEST(Protocol, ResponseObjects) {
    const ReplyHeader header{"chatcmpl-1", 1700000000, "m"};
    const Usage usage{7, 3};
    const json whole = completion_object(Endpoint::ChatCompletions, header, "Hello", infer::FinishReason::Context, usage);
    EXPECT_EQ(whole["object"], "chat.completion");
    EXPECT_EQ(whole["id"], "chatcmpl-1");
    EXPECT_EQ(whole["created"], 1700000000);
    EXPECT_EQ(whole["model"], "m");
    EXPECT_EQ(whole["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "Hello"}}));
    EXPECT_EQ(whole["choices"][0]["finish_reason"], "length");  // a full context reads as length
    EXPECT_EQ(whole["usage"], (json{{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}}));
    const json text = completion_object(Endpoint::Completions, header, "Hi", infer::FinishReason::Stop, usage);
    EXPECT_EQ(text["object"], "text_completion");
    EXPECT_EQ(text["choices"][0]["text"], "Hi");
    EXPECT_EQ(text["choices"][0]["finish_reason"], "stop");

    EXPECT_EQ(role_chunk(header)["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
    const json piece = text_chunk(Endpoint::ChatCompletions, header, "He");
    EXPECT_EQ(piece["object"], "chat.completion.chunk");
    EXPECT_EQ(piece["choices"][0]["delta"], (json{{"content", "He"}}));
    EXPECT_TRUE(piece["choices"][0]["finish_reason"].is_null());
    const json end = finish_chunk(Endpoint::ChatCompletions, header, infer::FinishReason::Length);
    EXPECT_EQ(end["choices"][0]["delta"], json::object());
    EXPECT_EQ(end["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(text_chunk(Endpoint::Completions, header, "x")["choices"][0]["text"], "x");
    const json last = usage_chunk(Endpoint::ChatCompletions, header, usage);
    EXPECT_TRUE(last["choices"].empty());
    EXPECT_EQ(last["usage"]["total_tokens"], 10);
    EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");

    const json error = error_object(ApiError(404, "invalid_request_error", "model_not_found", "model", "no such model"));
    EXPECT_EQ(error, (json{{"error",
                            {{"message", "no such model"}, {"type", "invalid_request_error"}, {"param", "model"},
                             {"code", "model_not_found"}}}}));
    EXPECT_TRUE(error_object(ApiError(400, "invalid_request_error", "", "", "x"))["error"]["param"].is_null());
    EXPECT_TRUE(new_response_id(Endpoint::ChatCompletions).starts_with("chatcmpl-"));
    EXPECT_NE(new_response_id(Endpoint::Completions), new_response_id(Endpoint::Completions));
}

}  // namespace
}  // namespace kindred::serve
