// EQ-Bench 3's run directory with scripted models: journals, resume after a crash, the judge's
// retry-then-fail rule, refused replies, too-short tasks, torn and corrupt journal lines; the
// malformed corpus of its readers; small Python-compatibility facts of the judge JSON reader.
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/eqbench3_run.h"
#include "malformed_corpus.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

using testing::ScratchDir;
using testing::shared_path;

const Eqb3Data& data() {
    static const Eqb3Data value = load_eqbench3_data(shared_path("eqbench3"));
    return value;
}

std::string long_reply(const std::string& seed) {
    return "# I'm thinking & feeling\n" + std::string(120, 'x') + seed + "\n# They're thinking & feeling\nthey\n# My response\nhello\n--";
}

struct Scripted {
    int tested_calls = 0;
    std::map<std::string, int> judge_asked;  // prompt -> times asked
    int judge_calls = 0;
    int fail_judge_after = -1;  // throw an Error (endpoint down) once this many calls were answered
    bool judge_babbles = false;

    Eqb3Chat tested() {
        return [this](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t seed) {
            ++tested_calls;
            // A reply that depends on everything the harness controls: the conversation, the settings, the seed.
            const std::string tag = std::to_string(messages.size()) + "/" + std::to_string(settings.temperature) + "/" + std::to_string(seed);
            return Eqb3Reply{"<think>hidden</think>" + long_reply(tag), 10, 20, "stop"};
        };
    }
    Eqb3Chat judge() {
        return [this](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t) {
            EXPECT_EQ(settings.temperature, 0.0);
            EXPECT_EQ(settings.max_tokens, kEqBench3JudgeMaxTokens);
            EXPECT_FALSE(settings.min_p.has_value());
            if (fail_judge_after >= 0 && judge_calls >= fail_judge_after) fail("judge endpoint down");
            ++judge_calls;
            ++judge_asked[messages.back().content];
            if (judge_babbles) return Eqb3Reply{"I refuse to output JSON.", -1, -1, "stop"};
            return Eqb3Reply{R"({"demonstrated_empathy": 12, "pragmatic_ei": 14, "depth_of_insight": 16, "correctness": 10, "warmth": 3})", -1, -1, "stop"};
        };
    }
};

Eqb3RunOptions options_for(const std::string& out) {
    Eqb3RunOptions options;
    options.out = out;
    options.scenarios = {"401", "1", "208"};
    options.name = "scripted";
    options.identity = {{"model", "scripted"}};
    options.progress = false;
    return options;
}

TEST(EqBench3Run, RunsScenariosInFileOrderAndScoresThem) {
    ScratchDir dir("eqb3-run");
    Scripted script;
    const auto result = run_eqbench3(data(), script.tested(), script.judge(), options_for(dir / "run"));
    // 1: 3 turns + debrief; 208: 3 turns + debrief; 401: 1 turn.
    EXPECT_EQ(script.tested_calls, 4 + 4 + 1);
    EXPECT_EQ(script.judge_calls, 3);
    ASSERT_EQ(result.tasks.size(), 3u);
    EXPECT_EQ(result.tasks[0].scenario, "1");
    EXPECT_EQ(result.tasks[2].scenario, "401");
    EXPECT_EQ(result.scored, 3u);
    // Role-play/drafting: mean(12, 14, 16, 10) = 13 (warmth is a style criterion); analysis:
    // depth_of_insight 16 and correctness 10 count: 13. Run: 13 -> 65 on 0-100.
    EXPECT_DOUBLE_EQ(*result.rubric_score, 65.0);
    EXPECT_EQ(result.tasks[2].task.missing, 4u);  // the analysis judge left out 4 of its 6
    // Replies are stored without the <think> block.
    std::ifstream replies(dir / "run/replies.jsonl");
    std::string line;
    std::getline(replies, line);
    EXPECT_EQ(line.find("<think>"), std::string::npos);
    EXPECT_NE(line.find("I'm thinking"), std::string::npos);
}

TEST(EqBench3Run, ResumeAfterAnEndpointFailureAsksNothingTwice) {
    ScratchDir dir("eqb3-resume");
    Scripted reference;
    const auto uninterrupted = run_eqbench3(data(), reference.tested(), reference.judge(), options_for(dir / "a"));

    Scripted script;
    script.fail_judge_after = 1;
    EXPECT_THROW(run_eqbench3(data(), script.tested(), script.judge(), options_for(dir / "b")), Error);
    const int tested_before = script.tested_calls;
    script.fail_judge_after = -1;
    auto resume = options_for(dir / "b");
    resume.resume = true;
    const auto resumed = run_eqbench3(data(), script.tested(), script.judge(), resume);
    for (const auto& [prompt, times] : script.judge_asked) EXPECT_EQ(times, 1);
    EXPECT_EQ(script.judge_calls, reference.judge_calls);
    EXPECT_EQ(script.tested_calls, reference.tested_calls) << tested_before << " before the failure";
    EXPECT_EQ(resumed.rubric_score, uninterrupted.rubric_score);
    EXPECT_EQ(resumed.judge_calls, 2u);
    EXPECT_EQ(resumed.judge_answers_total, 3u);

    // Without --resume an existing run is never overwritten; a resume with other settings is refused.
    EXPECT_THROW(run_eqbench3(data(), script.tested(), script.judge(), options_for(dir / "b")), Error);
    resume.seed = 5;
    try {
        run_eqbench3(data(), script.tested(), script.judge(), resume);
        ADD_FAILURE() << "accepted a resume with another seed";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'seed' differs"), std::string::npos) << e.what();
    }
}

TEST(EqBench3Run, UnparseableJudgeAnswersAreRetriedThenRecordedAsFailed) {
    ScratchDir dir("eqb3-babble");
    Scripted script;
    script.judge_babbles = true;
    auto options = options_for(dir / "run");
    options.judge_attempts = 2;
    const auto result = run_eqbench3(data(), script.tested(), script.judge(), options);
    EXPECT_EQ(script.judge_calls, 6);
    EXPECT_EQ(result.scored, 0u);
    EXPECT_FALSE(result.rubric_score.has_value());
    for (const auto& task : result.tasks) EXPECT_EQ(task.status, "judge failed");
    // Failed is final: a resume asks nothing more.
    options.resume = true;
    script.judge_babbles = false;
    (void)run_eqbench3(data(), script.tested(), script.judge(), options);
    EXPECT_EQ(script.judge_calls, 6);
}

TEST(EqBench3Run, RefusedAndShortRepliesAreNotJudged) {
    ScratchDir dir("eqb3-refused");
    int judge_calls = 0;
    const Eqb3Chat tested = [](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings&, std::uint64_t) -> Eqb3Reply {
        if (messages.front().content.find("[TRANSCRIPT]") != std::string::npos) throw Eqb3ReplyRefused("the conversation has 9000 tokens");
        return {"too short", -1, -1, "stop"};
    };
    const Eqb3Chat judge = [&](const std::vector<Eqb3Message>&, const Eqb3ChatSettings&, std::uint64_t) {
        ++judge_calls;
        return Eqb3Reply{"{}", -1, -1, "stop"};
    };
    const auto result = run_eqbench3(data(), tested, judge, options_for(dir / "run"));
    EXPECT_EQ(judge_calls, 0);
    EXPECT_EQ(result.tasks[0].status, "too short");
    EXPECT_EQ(result.tasks[2].status, "error");
    EXPECT_NE(result.tasks[2].detail.find("9000 tokens"), std::string::npos);
}

TEST(EqBench3Run, TornLastLineIsDroppedAndCorruptLinesAreErrors) {
    ScratchDir dir("eqb3-torn");
    Scripted script;
    auto options = options_for(dir / "run");
    (void)run_eqbench3(data(), script.tested(), script.judge(), options);
    const int calls = script.tested_calls;
    // A crash mid-write leaves a line without its newline: dropped on resume (truncated away).
    {
        std::ofstream append(dir / "run/replies.jsonl", std::ios::app);
        append << R"({"scenario": "1", "step": "deb)";
    }
    options.resume = true;
    (void)run_eqbench3(data(), script.tested(), script.judge(), options);
    EXPECT_EQ(script.tested_calls, calls);
    {
        std::ofstream append(dir / "run/judge.jsonl", std::ios::app);
        append << "not json\n";
    }
    try {
        (void)run_eqbench3(data(), script.tested(), script.judge(), options);
        ADD_FAILURE() << "accepted a corrupt journal line";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("judge.jsonl line 4"), std::string::npos) << e.what();
    }
}

TEST(EqBench3Run, UnknownAndSkippedScenariosAreNamed) {
    ScratchDir dir("eqb3-ids");
    Scripted script;
    auto options = options_for(dir / "run");
    options.scenarios = {"409"};
    try {
        (void)run_eqbench3(data(), script.tested(), script.judge(), options);
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("skipped by the official parser"), std::string::npos) << e.what();
    }
    options.scenarios = {"999"};
    EXPECT_THROW((void)run_eqbench3(data(), script.tested(), script.judge(), options), Error);
}

TEST(EqBench3Json, PythonStrOfParsedValues) {
    const PyValue value = parse_python_json(R"({"a": [1e-05, 1e16, 123.0, -0, 0.0001, "it's", true, null, {"k": 2.5e-7}]})", "t");
    EXPECT_EQ(python_str(*value.find("a")), "[1e-05, 1e+16, 123.0, 0, 0.0001, \"it's\", True, None, {'k': 2.5e-07}]");
    EXPECT_EQ(python_strip("\u3000 x \u2028"), "x");
    EXPECT_EQ(python_length("h\u00e9llo"), 5u);
    // A key given twice keeps its first place and its last value, as a Python dict.
    const PyValue twice = parse_python_json(R"({"a": 1, "b": 2, "a": 3})", "t");
    ASSERT_EQ(twice.members.size(), 2u);
    EXPECT_EQ(twice.members[0].first, "a");
    EXPECT_EQ(twice.members[0].second.text, "3");
}

TEST(EqBench3Corpus, MalformedInputsAreRefusedWithTheirReason) {
    testing::expect_every_corpus_file_refused(testing::source_path("tests/corpus/eqbench3-malformed"),
                                              [](const std::filesystem::path& file, const std::string& name) {
                                                  const std::string text = testing::read_corpus_bytes(file);
                                                  if (name.starts_with("scenarios-")) (void)parse_eqbench3_scenarios(text, name);
                                                  else if (name.starts_with("criteria-")) (void)parse_eqbench3_criteria(text, name);
                                                  else (void)robust_json_loads(text, name);
                                              });
}

}  // namespace
}  // namespace kindred::eval
