// `kindred eval eqbench3` end to end against a stand-in judge: a cpp-httplib server on
// 127.0.0.1 in this process answers in the judge's formats, deterministically (the answer is a
// function of the prompt and of how often that prompt was asked), and counts what it answered.
// The tested model is the embedded SmolLM2-135M with a short reply budget. A run killed (SIGKILL,
// by the server, while a judge call is in flight) and resumed ends with the same replies, scores
// and judge answers as an uninterrupted run, and no answered judge call is asked again.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run_kindred.h"
#include "scratch_dir.h"
#include "stand_in_judge.h"
#include "test_paths.h"

namespace kindred::testing {
namespace {

using nlohmann::json;

// Chosen for speed (the shortest one-turn role-play and the shortest analysis): turn, debrief,
// analysis and both rubric prompts run; drafting is covered with scripted models in test_eval.
const std::string kScenarios = "13,415";

// The judge's formats: some first answers unparseable (retried), pairwise verdicts, rubric scores in a fence.
std::string judge_answer(const std::string& prompt, int attempt) {
    const std::uint64_t h = stand_in_hash(prompt);
    if (attempt == 1 && h % 3 == 0) return "I am not able to produce JSON right now.";  // unparseable: retried
    if (prompt.find("A0493") != std::string::npos) {
        json answer = {{"chain_of_thought_reasoning", "stand-in"}};
        for (int i = 0; i < 8; ++i) answer["criterion_" + std::to_string(i)] = std::string((h >> i) & 1 ? "A0493" : "A0488") + std::string(1 + (h >> (8 + i)) % 5, '+');
        return answer.dump();
    }
    json answer = {{"chain_of_thought_reasoning", "stand-in \"judge\""}};
    for (const char* c : {"demonstrated_empathy", "pragmatic_ei", "depth_of_insight", "social_dexterity", "emotional_reasoning",
                          "message_tailoring", "warmth", "theory_of_mind", "subtext_identification", "intellectual_grounding",
                          "correctness"}) {
        answer[c] = static_cast<int>((h ^ stand_in_hash(c)) % 21);
    }
    return "```json\n" + answer.dump(2) + "\n```";
}

std::vector<std::string> run_args(const std::string& judge_url, const std::string& out, const std::string& name) {
    return {"eval", "eqbench3", "--data", shared_path("eqbench3"), "--model", "default", "--scenarios", kScenarios, "--max-tokens", "48",
            "--judge-url", judge_url, "--judge-model", "stand-in", "--judge-timeout", "60", "--out", out, "--name", name, "--seed", "7",
            "--threads", "2"};
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The journal's records without timings (which differ between runs).
std::vector<json> journal(const std::string& path) {
    std::vector<json> records;
    std::istringstream lines(read_text(path));
    for (std::string line; std::getline(lines, line);) {
        json r = json::parse(line);
        r.erase("seconds");
        records.push_back(std::move(r));
    }
    return records;
}

TEST(EqBench3Cli, KilledAndResumedRunEqualsUninterruptedOneWithoutRepeatedJudgeCalls) {
    ScratchDir dir("eqb3-e2e");
    const std::string baseline = dir / "baseline";
    const std::string resumed = dir / "resumed";

    StandInJudge baseline_judge(judge_answer);
    ASSERT_EQ(run_kindred_process(run_args(baseline_judge.url(), baseline, "base"), dir / "baseline.log"), 0) << read_text(dir / "baseline.log");
    const auto baseline_calls = baseline_judge.answered();
    ASSERT_GE(baseline_calls.size(), 2u) << "too few judge calls to kill a run midway: " << read_text(dir / "baseline.log");

    StandInJudge judge(judge_answer);
    const int status = run_kindred_process(run_args(judge.url(), resumed, "base"), dir / "killed.log",
                                           [&](pid_t pid) { judge.kill_on_request(2, pid); });
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << read_text(dir / "killed.log");
    const auto before_kill = judge.answered();
    ASSERT_EQ(before_kill.size(), 1u);

    std::vector<std::string> resume = run_args(judge.url(), resumed, "base");
    resume.push_back("--resume");
    resume.push_back("--json");
    ASSERT_EQ(run_kindred_process(resume, dir / "resume.log"), 0) << read_text(dir / "resume.log");
    const auto all = judge.answered();

    // No answered call asked again; together they are exactly the uninterrupted run's calls.
    EXPECT_EQ(all.size(), baseline_calls.size());
    EXPECT_EQ(std::multiset<std::string>(all.begin(), all.end()), std::multiset<std::string>(baseline_calls.begin(), baseline_calls.end()));

    EXPECT_EQ(journal(baseline + "/replies.jsonl"), journal(resumed + "/replies.jsonl"));
    EXPECT_EQ(journal(baseline + "/judge.jsonl"), journal(resumed + "/judge.jsonl"));
    json a = json::parse(read_text(baseline + "/results.json"));
    json b = json::parse(read_text(resumed + "/results.json"));
    EXPECT_EQ(a.at("tasks"), b.at("tasks"));
    EXPECT_EQ(a.at("rubric_score"), b.at("rubric_score"));
    EXPECT_FALSE(a.at("rubric_score").is_null());

    // The resumed invocation's --json reports the score and that it asked only the rest.
    const std::string log = read_text(dir / "resume.log");
    const json printed = json::parse(log.substr(log.find("{\n")));
    EXPECT_EQ(printed.at("rubric_score"), a.at("rubric_score"));
    EXPECT_EQ(printed.at("scenarios").get<int>(), 2);
    EXPECT_EQ(printed.at("judge_calls").get<std::size_t>(), baseline_calls.size() - 1);

    // A finished run resumed again asks nothing.
    StandInJudge idle(judge_answer);
    std::vector<std::string> again = run_args(idle.url(), resumed, "base");
    again.push_back("--resume");
    ASSERT_EQ(run_kindred_process(again, dir / "again.log"), 0) << read_text(dir / "again.log");
    EXPECT_TRUE(idle.answered().empty());

    // A resume with another seed (a different run) is refused, naming the field.
    std::vector<std::string> other = run_args(idle.url(), resumed, "base");
    other[other.size() - 3] = "8";
    other.push_back("--resume");
    EXPECT_NE(run_kindred_process(other, dir / "other.log"), 0);
    EXPECT_NE(read_text(dir / "other.log").find("'seed' differs"), std::string::npos) << read_text(dir / "other.log");

    // Two runs under one name cannot be rated apart.
    StandInJudge pairwise(judge_answer);
    const auto compare_args = [&](const std::string& second, const std::string& out) {
        return std::vector<std::string>{"eval", "eqbench3", "compare", baseline, second, "--data", shared_path("eqbench3"), "--judge-url",
                                        pairwise.url(), "--judge-model", "stand-in", "--out", out, "--json"};
    };
    ASSERT_NE(run_kindred_process(compare_args(resumed, dir / "cmp-same"), dir / "same.log"), 0);
    EXPECT_NE(read_text(dir / "same.log").find("is used by another run too"), std::string::npos) << read_text(dir / "same.log");

    // compare: a copy of the run under another name meets the baseline on every scenario, in both
    // orders; a second compare finds every answer in its journal and asks nothing.
    std::filesystem::copy(resumed, dir / "copy", std::filesystem::copy_options::recursive);
    json config = json::parse(read_text(dir / "copy/config.json"));
    config["name"] = "copy";
    std::ofstream(dir / "copy/config.json") << config.dump(2);
    ASSERT_EQ(run_kindred_process(compare_args(dir / "copy", dir / "cmp"), dir / "compare.log"), 0) << read_text(dir / "compare.log");
    const std::string compare_log = read_text(dir / "compare.log");
    const json compared = json::parse(compare_log.substr(compare_log.find("{\n")));
    EXPECT_EQ(compared.at("matches").get<std::size_t>(), 2u);
    EXPECT_EQ(compared.at("judge_calls").get<std::size_t>(), pairwise.answered().size());
    EXPECT_GE(pairwise.answered().size(), 4u);
    EXPECT_FALSE(compared.at("normalised").get<bool>());
    ASSERT_EQ(compared.at("runs").size(), 2u);
    EXPECT_NEAR(compared.at("runs")[0].at("elo").get<double>() + compared.at("runs")[1].at("elo").get<double>(), 2400.0, 1e-6)
        << "two fresh TrueSkill players move by equal and opposite amounts";
    EXPECT_NE(read_text(dir / "cmp/criteria.svg").find("<svg"), std::string::npos);
    EXPECT_NE(read_text(dir / "cmp/compare.md").find("raw TrueSkill"), std::string::npos);
    const std::size_t before = pairwise.answered().size();
    ASSERT_EQ(run_kindred_process(compare_args(dir / "copy", dir / "cmp"), dir / "compare2.log"), 0) << read_text(dir / "compare2.log");
    EXPECT_EQ(pairwise.answered().size(), before);
}

}  // namespace
}  // namespace kindred::testing
