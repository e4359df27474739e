// `kindred eval judge-emotions` end to end against a stand-in judge (tests/cli/stand_in_judge.h: a
// server on 127.0.0.1 in this process) that labels each comment deterministically, a function of
// the comment and of how often it was asked (some first answers are unreadable and retried), and
// counts what it answered. A run killed (SIGKILL, by the server, while a call is in flight) and
// resumed ends with the same answers as an uninterrupted run, and no answered call is asked again.
// With --adapter the emotion head is scored on the comments the judge labelled. Bad input fails
// naming file, line or flag. The scores themselves are checked against scikit-learn in
// tests/eval/test_judge_emotions.cpp.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/heads.h"
#include "run_kindred.h"
#include "scratch_dir.h"
#include "stand_in_judge.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

using nlohmann::json;

const std::vector<std::string> kGoEmotions = {
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral"};

// The comment of a judge-emotions prompt labelled by its hash; a quarter of first answers unreadable.
std::string label_answer(const std::string& prompt, int attempt) {
    const std::size_t start = prompt.find("<<<\n") + 4;
    const std::uint64_t h = stand_in_hash(prompt.substr(start, prompt.find("\n>>>") - start));
    if (attempt == 1 && h % 4 == 0) return "I would say it sounds upset.";
    return json{{"emotions", {kGoEmotions[h % 28], kGoEmotions[(h >> 8) % 28]}}}.dump();
}

const std::string kData = source_path("data/samples/goemotions/data/dev.tsv");

std::vector<std::string> run_args(const std::string& url, const std::string& out) {
    return {"eval", "judge-emotions", "--judge-url", url, "--judge-model", "stand-in", "--judge-timeout", "60", "--data", kData,
            "--sample", "12", "--seed", "4", "--out", out, "--json"};
}

std::string contents(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The journal's records without timings (which differ between runs).
std::vector<json> answers(const std::string& run) {
    std::vector<json> records;
    std::istringstream lines(contents(run + "/answers.jsonl"));
    for (std::string line; std::getline(lines, line);) {
        json record = json::parse(line);
        record.erase("seconds");
        records.push_back(std::move(record));
    }
    return records;
}

json printed_json(const std::string& log) {
    const std::string text = contents(log);
    return json::parse(text.substr(text.find("{\n")));
}

TEST(JudgeEmotionsCli, KilledAndResumedRunEqualsUninterruptedOneWithoutRepeatedCalls) {
    ScratchDir dir("judge-emotions-e2e");
    const std::string baseline = dir / "baseline", resumed = dir / "resumed";

    // The uninterrupted run, with a 28-label head (random weights, frozen trunk) scored beside it.
    const std::string heads = dir / "heads";
    std::filesystem::create_directories(heads);
    model::HeadsConfig config;
    config.emotion_classes = 28;
    config.strategy = config.valence_arousal = false;
    config.emotion_activation = model::EmotionActivation::Sigmoid;
    model::Heads head(576, config);  // SmolLM2-135M's hidden size
    head.set_emotion_threshold(0.5);
    model::write_heads(heads, head, kGoEmotions, {});
    StandInJudge baseline_judge(label_answer);
    std::vector<std::string> with_head = run_args(baseline_judge.url(), baseline);
    for (const char* flag : {"--model", "default", "--adapter"}) with_head.push_back(flag);
    with_head.push_back(heads);
    ASSERT_EQ(run_kindred_process(with_head, dir / "baseline.log"), 0) << contents(dir / "baseline.log");
    const auto baseline_calls = baseline_judge.answered();
    const json first = printed_json(dir / "baseline.log");
    EXPECT_EQ(first.at("sample"), 12);
    EXPECT_EQ(first.at("labelled").get<int>() + first.at("failed").get<int>(), 12);
    EXPECT_GT(first.at("judge_calls").get<std::size_t>(), 12u) << "the stand-in makes some first answers unreadable";
    EXPECT_EQ(first.at("judge_calls").get<std::size_t>(), baseline_calls.size());
    EXPECT_EQ(first.at("judge_usage").at("calls").get<std::size_t>(), baseline_calls.size());
    EXPECT_GT(first.at("prompt_tokens").get<std::int64_t>(), 0);
    EXPECT_EQ(first.at("prompt_tokens"), first.at("judge_usage").at("prompt_tokens"));
    EXPECT_EQ(first.at("completion_tokens"), first.at("judge_usage").at("completion_tokens"));
    ASSERT_TRUE(first.at("judge").is_object());
    EXPECT_EQ(first.at("judge").at("labels").size(), 28u);
    EXPECT_EQ(first.at("head").at("examples"), first.at("labelled"));
    EXPECT_EQ(first.at("head").at("space"), "goemotions");
    EXPECT_EQ(first.at("neutral_baseline").at("examples"), first.at("labelled"));
    const json results = json::parse(contents(baseline + "/results.json"));
    EXPECT_EQ(results.at("head"), first.at("head"));
    EXPECT_EQ(results.at("judge"), first.at("judge"));

    StandInJudge judge(label_answer);
    const int status = run_kindred_process(run_args(judge.url(), resumed), dir / "killed.log", [&](pid_t pid) { judge.kill_on_request(5, pid); });
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << contents(dir / "killed.log");
    ASSERT_EQ(judge.answered().size(), 4u);

    std::vector<std::string> resume = run_args(judge.url(), resumed);
    resume.push_back("--resume");
    ASSERT_EQ(run_kindred_process(resume, dir / "resume.log"), 0) << contents(dir / "resume.log");
    const auto all = judge.answered();
    // Nothing answered is asked again; together the calls are exactly the uninterrupted run's.
    EXPECT_EQ(std::multiset<std::string>(all.begin(), all.end()), std::multiset<std::string>(baseline_calls.begin(), baseline_calls.end()));
    EXPECT_EQ(answers(baseline), answers(resumed));
    const json again = printed_json(dir / "resume.log");
    EXPECT_EQ(again.at("judge_calls").get<std::size_t>(), baseline_calls.size() - 4);
    EXPECT_EQ(again.at("answers_total").get<std::size_t>(), baseline_calls.size());
    EXPECT_EQ(again.at("judge"), first.at("judge"));
    EXPECT_EQ(json::parse(contents(resumed + "/results.json")).at("items"), results.at("items"));

    // Resumed once more: nothing is asked. Another seed is another run: refused, naming the field.
    StandInJudge idle(label_answer);
    std::vector<std::string> finished = run_args(idle.url(), resumed);
    finished.push_back("--resume");
    ASSERT_EQ(run_kindred_process(finished, dir / "finished.log"), 0) << contents(dir / "finished.log");
    EXPECT_TRUE(idle.answered().empty());
    finished[finished.size() - 5] = "5";  // --seed's value
    EXPECT_NE(run_kindred_process(finished, dir / "other.log"), 0);
    EXPECT_NE(contents(dir / "other.log").find("cannot resume: 'comments' differs"), std::string::npos) << contents(dir / "other.log");
}

TEST(JudgeEmotionsCli, BadInputFailsNamingTheFileLineOrFlag) {
    ScratchDir dir("judge-emotions-bad");
    const std::string judge = "--judge-url http://127.0.0.1:9/v1 --judge-model m --out '" + (dir / "run") + "' ";
    const auto expect_error = [&](const std::string& arguments, const std::string& phrase) {
        const CommandResult result = run_kindred("eval judge-emotions " + arguments, /*merge_stderr=*/true);
        EXPECT_NE(result.exit_code, 0) << arguments;
        EXPECT_NE(result.output.find(phrase), std::string::npos) << arguments << "\n" << result.output;
    };
    expect_error(judge + "--data '" + (dir / "missing.tsv") + "'", dir / "missing.tsv");
    expect_error(judge + "--data '" + kData + "' --sample 0", "--sample must be at least 1, got 0");
    expect_error(judge + "--data '" + kData + "' --sample 41", "a sample of 41 comments, but " + kData + " holds 40");
    std::ofstream(dir / "bad.tsv") << "fine\t1\ta\nnot fine\t3,28\tb\n";
    expect_error(judge + "--data '" + (dir / "bad.tsv") + "' --sample 1", dir / "bad.tsv" + ":2: unknown label id 28");
    expect_error("--data '" + kData + "'", "the judge (--judge-url, --judge-model): give its URL");
    expect_error("--judge-url http://127.0.0.1:9/v1 --judge-model m --data '" + kData + "' --resume", "--resume needs --out");
    expect_error(judge + "--data '" + kData + "' --judge-key-env KINDRED_TEST_UNSET_KEY", "KINDRED_TEST_UNSET_KEY");
}

}  // namespace
}  // namespace kindred::testing
