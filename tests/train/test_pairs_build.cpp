// Tests for train/pairs_build.h on the default SmolLM2 model: gold-vs-sample and safety pairs from
// prepared conversations (with provenance and the conversation's head labels), and judged pairs
// through net/'s chat client against a stand-in judge on 127.0.0.1 (both orders asked, a 503
// retried, every verdict cached so a rerun asks nothing), plus the recipe's pairs section and the
// verdict parser. Sampled replies are kept short (a few tokens, keep_truncated) to stay fast.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "infer/loaded_model.h"
#include "local_http_server.h"
#include "model/lora_adapters.h"
#include "net/openai_chat.h"
#include "test_paths.h"
#include "tiny_sft_model.h"
#include "train/pairs_build.h"
#include "train/preference_pairs.h"
#include "train/safety_replies.h"
#include "train/training_run.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

const char* kPrompts[] = {
    R"({"source": "empathetic_dialogues", "task": "chat", "messages": [{"role": "system", "content": "You are Kindred, a warm friend."}, {"role": "user", "content": "My cat has been sick all week."}, {"role": "assistant", "content": "Oh no, that sounds worrying. How is she doing today?", "target": true}], "emotion": {"labels": ["anxiety"]}, "valence": -0.5, "arousal": 0.5})",
    R"({"source": "esconv", "task": "chat", "messages": [{"role": "user", "content": "The doctor changed my medication and I want to stop taking my meds."}, {"role": "assistant", "content": "I'm sorry, that sounds really hard. Have you been able to tell your doctor how you feel?", "target": true, "strategies": ["Question"]}]})",
    R"({"source": "goemotions", "task": "emotion", "messages": [{"role": "user", "content": "lol what"}], "emotion": {"labels": ["amusement"]}})",
};

struct Fixture {
    fs::path dir;
    std::unique_ptr<infer::LoadedModel> model;
};

// The default model with a reference adapter whose B is zero (it samples what the base samples).
Fixture fixture(const std::string& name) {
    Fixture f;
    f.dir = testing::fresh_dir(name);
    std::ofstream prompts(f.dir / "prompts.jsonl");
    for (const char* line : kPrompts) prompts << line << "\n";
    prompts.close();
    const auto base = infer::LoadedModel::open(kindred::testing::default_model_path());
    model::LoraConfig lora;
    lora.rank = 2;
    lora.targets = {"q", "v"};
    model::LoraAdapters zero(base->decoder().config(), lora, base->decoder().weights().qk_interleaved);
    peft::write_adapter((f.dir / "reference").string(), peft_adapter(zero, "default"));
    f.model = infer::LoadedModel::open(kindred::testing::default_model_path(), (f.dir / "reference").string());
    return f;
}

PairsBuildSettings short_samples(const Fixture& f) {
    PairsBuildSettings settings;
    settings.prompts = (f.dir / "prompts.jsonl").string();
    settings.out = (f.dir / "pairs.jsonl").string();
    settings.max_tokens = 6;
    settings.keep_truncated = true;
    settings.seed = 3;
    return settings;
}

std::string file_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<PreferencePair> read_pairs(const fs::path& path) {
    std::vector<PreferencePair> pairs;
    PairDatasetStats stats;
    for_each_pair(path.string(), stats, [&](PreferencePair&& pair) { pairs.push_back(std::move(pair)); });
    return pairs;
}

TEST(PairsBuild, GoldVersusSampleAndSafetyPairsCarryTheirProvenance) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const Fixture f = fixture("pairs_gold");
    PairsBuildSettings settings = short_samples(f);
    settings.dev_prompts = settings.prompts;
    settings.dev_out = (f.dir / "dev.jsonl").string();
    const auto report = build_pairs(settings, *f.model, {}, {});
    EXPECT_EQ(report.prompts, 2u);  // the emotion-only line has no reply to prefer
    EXPECT_EQ(report.gold_vs_model.made + report.gold_vs_model.identical + report.gold_vs_model.empty, 4u);
    EXPECT_EQ(report.safety.made, 2u);  // "stop taking my meds" triggers the medical rule, in both files
    const auto pairs = read_pairs(settings.out);
    ASSERT_EQ(pairs.size(), report.pairs);
    std::size_t gold = 0, safety = 0;
    for (const auto& pair : pairs) {
        if (pair.source == "gold_vs_model") {
            ++gold;
            EXPECT_EQ(pair.provenance["rejected"], "reference sample");
            EXPECT_TRUE(pair.provenance.contains("seed"));
            if (pair.prompt.back().content == "My cat has been sick all week.") {
                EXPECT_EQ(pair.chosen, "Oh no, that sounds worrying. How is she doing today?");
                EXPECT_FALSE(pair.emotions.empty());  // the conversation's labels travel with the pair
                EXPECT_TRUE(pair.has_va);
            }
        } else {
            ASSERT_EQ(pair.source, "safety");
            ++safety;
            EXPECT_EQ(pair.provenance["rule"], "medical");
            EXPECT_EQ(pair.provenance["chosen"], "gold");  // the gold reply breaks no rule
            EXPECT_TRUE(violation(data::SafetyRules::builtin(), pair.rejected).has_value()) << pair.rejected;
            EXPECT_EQ(pair.strategy, 0);  // "Question", the gold reply's strategy
        }
    }
    EXPECT_EQ(2 * gold, report.gold_vs_model.made);  // the dev file is the same prompts with the same seeds
    EXPECT_EQ(safety, 1u);
    EXPECT_TRUE(fs::exists(settings.dev_out));

    // The same seed and thread count give the same pairs.
    const std::string first = file_text(settings.out);
    build_pairs(settings, *f.model, {}, {});
    EXPECT_EQ(file_text(settings.out), first);
    fs::remove_all(f.dir);
}

// A judge on 127.0.0.1 that prefers the longer reply (so both orders agree), answers 503 once first
// (retried by the client), and counts what it is asked. Bounded: a few requests, then it stops.
TEST(PairsBuild, JudgedPairsThroughAStandInEndpointAreCachedAndResumed) {
    if (!fs::exists(kindred::testing::default_model_path())) GTEST_SKIP() << "default model not downloaded";
    const Fixture f = fixture("pairs_judge");
    std::atomic<int> requests{0};
    kindred::testing::LocalHttpServer server;
    server.routes().Post("/v1/chat/completions", [&](const httplib::Request& request, httplib::Response& response) {
        if (requests++ == 0) {
            response.status = 503;
            response.set_content(R"({"error": {"message": "warming up"}})", "application/json");
            return;
        }
        const auto body = nlohmann::json::parse(request.body);
        const std::string user = body["messages"].back()["content"].get<std::string>();
        const auto a = user.find("<A>"), a_end = user.find("</A>"), b = user.find("<B>"), b_end = user.find("</B>");
        const bool a_longer = a_end - a > b_end - b;
        const nlohmann::json reply = {
            {"model", "stand-in"},
            {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", std::string("Thinking.\n") + (a_longer ? "A" : "B")}}}, {"finish_reason", "stop"}}}},
            {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 2}}}};
        response.set_content(reply.dump(), "application/json");
    });
    server.start();

    std::ofstream(f.dir / "judge.txt") << "Which reply is kinder?\n{conversation}\n<A>{reply_a}</A>\n<B>{reply_b}</B>\nAnswer A or B.\n";
    PairsBuildSettings settings = short_samples(f);
    settings.gold_vs_model = false;
    settings.safety = false;
    settings.judge.enabled = true;
    settings.judge.model = "stand-in";
    settings.judge.prompt = (f.dir / "judge.txt").string();
    settings.judge.cache = (f.dir / "judgements.jsonl").string();
    net::ChatEndpoint endpoint;
    endpoint.base_url = server.url("/v1");
    endpoint.model = "stand-in";
    endpoint.http.timeout_s = 10.0;
    endpoint.http.max_attempts = 3;
    endpoint.http.sleep = [](double) {};  // no real backoff in a test
    net::ChatClient client(endpoint);
    const JudgeCall judge = [&](const std::string&, const std::string& user) {
        net::ChatCompletionRequest request;
        request.messages.push_back({"user", user});
        return client.complete(request).content;
    };

    const auto report = build_pairs(settings, *f.model, judge, {});
    const std::size_t judged = report.judge.made + report.judge.tied;
    ASSERT_GT(report.judge.made, 0u);
    EXPECT_EQ(requests.load(), static_cast<int>(2 * judged + 1));  // both orders per pair, one retried 503
    EXPECT_EQ(report.judge.cached, 0u);
    for (const auto& pair : read_pairs(settings.out)) {
        EXPECT_EQ(pair.source, "judge");
        EXPECT_GE(pair.chosen.size(), pair.rejected.size());  // the stand-in prefers the longer reply
        const auto verdicts = pair.provenance["verdicts"].get<std::string>();
        EXPECT_TRUE(verdicts == "AB" || verdicts == "BA") << verdicts;
    }

    // Run again: every verdict comes from the cache, the endpoint is not asked.
    const int asked = requests.load();
    const auto again = build_pairs(settings, *f.model, judge, {});
    EXPECT_EQ(requests.load(), asked);
    EXPECT_EQ(again.judge.cached, 2 * judged);
    EXPECT_EQ(again.judge.made, report.judge.made);
    server.stop();
    fs::remove_all(f.dir);
}

TEST(PairsBuild, VerdictIsTheLastStandaloneLetter) {
    EXPECT_EQ(parse_verdict("A"), 'A');
    EXPECT_EQ(parse_verdict("Reply A is warm, but B asks a question.\nB"), 'B');
    EXPECT_EQ(parse_verdict("**A**"), 'A');
    EXPECT_EQ(parse_verdict("Both are Bad"), 0);  // letters inside words do not count
    EXPECT_EQ(parse_verdict(""), 0);
}

TEST(PairsBuild, RecipeSectionIsChecked) {
    const auto read = [](const std::string& yaml) {
        Config config = Config::parse(yaml, "recipe.yaml");
        return read_pairs_settings(config);
    };
    EXPECT_EQ(read("pairs:\n  prompts: p.jsonl\n").max_tokens, 96);
    EXPECT_THROW(read("pairs:\n  judge:\n    enabled: true\n"), Error);  // url, model and prompt needed
    EXPECT_THROW(read("pairs:\n  dev_out: d.jsonl\n"), Error);          // without dev_prompts
    EXPECT_THROW(read("pairs:\n  gold_vs_model:\n    sampler: teacher\n"), Error);
    EXPECT_THROW(read("pairs:\n  sampling:\n    top_p: 0\n"), Error);
    try {
        read("pairs:\n  sampling:\n    temperature: -1\n");
        ADD_FAILURE();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("pairs.sampling.temperature"), std::string::npos) << error.what();
    }
}

}  // namespace
}  // namespace kindred::train
