// The judge consistency check (eval/judge_emotions.h) with scripted judges: scores against
// scikit-learn's (tests/goldens/judge_emotions, tools/goldens/judge_emotions.py) and a hand-computed
// case, the retry-then-fail rule, resume after an endpoint failure asking nothing twice, the sample's
// reproducibility, bad data files, the strict answer reader and its malformed corpus.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "error_of.h"
#include "eval/judge_emotions.h"
#include "eval/report.h"
#include "malformed_corpus.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::eval {
namespace {

using nlohmann::json;
using testing::ScratchDir;
using testing::error_of;

// The comment a judge prompt asks about (between the <<< >>> markers).
std::string comment_of(const std::string& prompt) {
    const std::size_t start = prompt.find("<<<\n") + 4;
    return prompt.substr(start, prompt.find("\n>>>") - start);
}

// A judge scripted per comment text: answers[text][k] is its (k+1)-th answer (the last one repeated).
struct ScriptedJudge {
    std::map<std::string, std::vector<std::string>> answers;
    std::map<std::string, int> asked;
    std::vector<double> temperatures;
    int calls = 0;
    int fail_after = -1;  // an Error (endpoint down) once this many calls were answered

    Eqb3Chat chat() {
        return [this](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t) {
            if (fail_after >= 0 && calls >= fail_after) fail("judge endpoint down");
            ++calls;
            temperatures.push_back(settings.temperature);
            EXPECT_EQ(messages.size(), 1u);
            const std::string text = comment_of(messages.back().content);
            const int k = asked[text]++;
            const auto& script = answers.at(text);
            return Eqb3Reply{script[std::min<std::size_t>(static_cast<std::size_t>(k), script.size() - 1)], 30, 8, "stop"};
        };
    }
};

std::string write_text(const ScratchDir& dir, const std::string& name, const std::string& text) {
    const std::string path = dir / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

JudgeEmotionsOptions options_for(const std::string& out) {
    JudgeEmotionsOptions options;
    options.out = out;
    options.judge_identity = {{"model", "scripted"}};
    options.progress = false;
    return options;
}


TEST(JudgeEmotions, ScoresEqualScikitLearnsOnTheGoldenSample) {
    std::ifstream in(testing::source_path("tests/goldens/judge_emotions/golden.json"));
    const json golden = json::parse(in);
    ScratchDir dir("judge-emotions-golden");
    const GoEmotionsFile file = read_goemotions_comments(write_text(dir, "dev.tsv", golden.at("tsv").get<std::string>()));
    ScriptedJudge judge;
    for (const auto& comment : file.comments) judge.answers[comment.text] = golden.at("answers").at(comment.id).get<std::vector<std::string>>();
    auto options = options_for(dir / "run");
    options.judge_attempts = golden.at("judge_attempts").get<int>();
    const auto sample = sample_goemotions_comments(file, file.comments.size(), 0);
    const JudgeEmotionsResult result = run_judge_emotions(file, sample, judge.chat(), options);

    EXPECT_EQ(judge.calls, golden.at("calls").get<int>());
    EXPECT_EQ(result.judge_calls, golden.at("calls").get<std::size_t>());
    EXPECT_EQ(result.labelled, golden.at("labelled").size());
    std::vector<std::string> failed;
    for (const auto& item : result.items) {
        if (!item.labels) failed.push_back(item.comment);
    }
    EXPECT_EQ(failed, golden.at("failed").get<std::vector<std::string>>());
    const json printed = judge_emotions_json(result, nullptr);
    std::size_t labelled = 0;
    for (const auto& item : printed.at("items")) {
        if (item.at("status") != "labelled") continue;
        EXPECT_EQ(item.at("comment"), golden.at("labelled")[labelled].at("comment"));
        EXPECT_EQ(item.at("labels"), golden.at("labelled")[labelled].at("labels")) << item.at("comment");
        ++labelled;
    }
    // Both sides divide the same integer counts in float64: 1e-12 covers summation order only.
    constexpr double kTolerance = 1e-12;
    ASSERT_TRUE(result.judge && result.neutral);
    for (const auto& [report, key] : {std::pair{&*result.judge, "judge"}, std::pair{&*result.neutral, "neutral"}}) {
        EXPECT_NEAR(report->macro_f1, golden.at(key).at("macro_f1").get<double>(), kTolerance) << key;
        EXPECT_NEAR(report->micro_f1, golden.at(key).at("micro_f1").get<double>(), kTolerance) << key;
        ASSERT_EQ(report->labels.size(), 28u);
        for (std::size_t g = 0; g < 28; ++g) {
            EXPECT_NEAR(report->labels[g].f1, golden.at(key).at("per_label_f1")[g].get<double>(), kTolerance) << key << " " << report->labels[g].label;
        }
    }
    // The journal holds every answer, parsed or not; results.json the summary.
    std::ifstream journal(dir / "run/answers.jsonl");
    std::size_t lines = 0;
    for (std::string line; std::getline(journal, line);) ++lines;
    EXPECT_EQ(lines, golden.at("calls").get<std::size_t>());
    std::ifstream results(dir / "run/results.json");
    EXPECT_NEAR(json::parse(results).at("judge").at("macro_f1").get<double>(), golden.at("judge").at("macro_f1").get<double>(), kTolerance);
}

TEST(JudgeEmotions, MacroF1IsTheHandComputedOneOnATinySample) {
    ScratchDir dir("judge-emotions-hand");
    // Gold: joy; anger + annoyance; neutral. The judge: joy; anger; sadness.
    const GoEmotionsFile file = read_goemotions_comments(
        write_text(dir, "dev.tsv", "What a lovely surprise party\t17\ta\nThey cancelled again, I am furious\t2,3\tb\nThe meeting moved to room 4\t27\tc\n"));
    ScriptedJudge judge;
    judge.answers = {{"What a lovely surprise party", {R"({"emotions": ["joy"]})"}},
                     {"They cancelled again, I am furious", {R"({"emotions": ["anger"]})"}},
                     {"The meeting moved to room 4", {R"({"emotions": ["sadness"]})"}}};
    const auto result = run_judge_emotions(file, sample_goemotions_comments(file, 3, 0), judge.chat(), options_for(dir / "run"));
    ASSERT_TRUE(result.judge);
    // joy and anger: F1 1; annoyance, neutral (missed) and sadness (false alarm): 0; the other 23
    // labels neither true nor predicted: 0 (sklearn's multi-label macro over all 28).
    EXPECT_DOUBLE_EQ(result.judge->macro_f1, 2.0 / 28.0);
    // TP 2 (joy, anger), FP 1 (sadness), FN 2 (annoyance, neutral): 2·2 / (2·2 + 1 + 2).
    EXPECT_DOUBLE_EQ(result.judge->micro_f1, 4.0 / 7.0);
    // "neutral" everywhere: right on c only: neutral F1 = 2·1 / (2·1 + 2 + 0) = 0.5; TP 1, FP 2, FN 3.
    EXPECT_DOUBLE_EQ(result.neutral->macro_f1, 0.5 / 28.0);
    EXPECT_DOUBLE_EQ(result.neutral->micro_f1, 2.0 / 7.0);
    EXPECT_EQ(result.labelled_lines, (std::vector<std::size_t>{1, 2, 3}));
    // Every first ask is at temperature 0.
    EXPECT_EQ(judge.temperatures, (std::vector<double>{0.0, 0.0, 0.0}));
}

TEST(JudgeEmotions, UnreadableAnswersAreRetriedThenCountedAsFailedNeverAsNeutral) {
    ScratchDir dir("judge-emotions-fail");
    const GoEmotionsFile file = read_goemotions_comments(write_text(dir, "dev.tsv", "Nothing here\t27\ta\nSo happy for you\t17\tb\n"));
    ScriptedJudge judge;
    judge.answers = {{"Nothing here", {"I cannot label this.", R"({"emotions": ["calm"]})", ""}},
                     {"So happy for you", {"", R"({"emotions": ["joy"]})"}}};
    auto options = options_for(dir / "run");
    options.judge_attempts = 3;
    const auto result = run_judge_emotions(file, sample_goemotions_comments(file, 2, 0), judge.chat(), options);
    EXPECT_EQ(judge.asked["Nothing here"], 3);      // three answers, none readable: failed
    EXPECT_EQ(judge.asked["So happy for you"], 2);  // the empty answer retried once
    EXPECT_EQ(result.failed, 1u);
    EXPECT_EQ(result.labelled, 1u);
    EXPECT_EQ(result.unparsed_answers, 4u);
    EXPECT_EQ(result.items[0].error, "answer: empty answer");
    // Scored over the one labelled comment only: joy right, so joy's F1 is 1 and neutral's is 0.
    ASSERT_TRUE(result.judge);
    EXPECT_EQ(result.judge->examples, 1);
    EXPECT_DOUBLE_EQ(result.judge->macro_f1, 1.0 / 28.0);
    EXPECT_EQ(result.labelled_lines, (std::vector<std::size_t>{2}));
    // Retries are drawn at a temperature that lets a deterministic judge answer differently.
    EXPECT_EQ(judge.temperatures, (std::vector<double>{0.0, kJudgeEmotionsRetryTemperature, kJudgeEmotionsRetryTemperature, 0.0,
                                                       kJudgeEmotionsRetryTemperature}));
    const json printed = judge_emotions_json(result, nullptr);
    EXPECT_EQ(printed.at("items")[0].at("status"), "failed");
    EXPECT_EQ(printed.at("failed"), 1);

    // Nothing readable at all: no score, not a zero.
    ScriptedJudge mute;
    mute.answers = {{"Nothing here", {"no"}}, {"So happy for you", {"no"}}};
    const auto none = run_judge_emotions(file, sample_goemotions_comments(file, 2, 0), mute.chat(), options_for(dir / "mute"));
    EXPECT_FALSE(none.judge.has_value());
    EXPECT_EQ(none.failed, 2u);
    EXPECT_EQ(mute.calls, 6);
}

TEST(JudgeEmotions, ResumeAfterAnEndpointFailureAsksNothingTwice) {
    ScratchDir dir("judge-emotions-resume");
    std::string tsv;
    for (int i = 0; i < 6; ++i) tsv += "comment number " + std::to_string(i) + "\t" + std::to_string(i * 5 % 28) + "\tid" + std::to_string(i) + "\n";
    const GoEmotionsFile file = read_goemotions_comments(write_text(dir, "dev.tsv", tsv));
    const auto script = [&] {
        ScriptedJudge judge;
        for (const auto& comment : file.comments) {
            // Comment 2's first answer is unreadable: the retry happens across the failure too.
            if (comment.id == "id2") judge.answers[comment.text] = {"nope", R"({"emotions": ["love"]})"};
            else judge.answers[comment.text] = {R"({"emotions": [")" + std::string(comment.id == "id0" ? "admiration" : "neutral") + R"("]})"};
        }
        return judge;
    };
    const auto sample = sample_goemotions_comments(file, 6, 3);
    ScriptedJudge reference = script();
    const auto uninterrupted = run_judge_emotions(file, sample, reference.chat(), options_for(dir / "a"));
    ASSERT_EQ(reference.calls, 7);

    ScriptedJudge judge = script();
    judge.fail_after = 3;
    EXPECT_THROW(run_judge_emotions(file, sample, judge.chat(), options_for(dir / "b")), Error);
    EXPECT_EQ(judge.calls, 3);
    judge.fail_after = -1;
    auto resume = options_for(dir / "b");
    resume.resume = true;
    const auto resumed = run_judge_emotions(file, sample, judge.chat(), resume);
    EXPECT_EQ(judge.calls, 7);  // 3 before the failure + 4 after: the uninterrupted run's count
    EXPECT_EQ(resumed.judge_calls, 4u);
    EXPECT_EQ(resumed.answers_total, 7u);
    for (const auto& [text, times] : judge.asked) EXPECT_EQ(times, reference.asked[text]) << text;
    ASSERT_TRUE(resumed.judge && uninterrupted.judge);
    EXPECT_EQ(resumed.judge->macro_f1, uninterrupted.judge->macro_f1);
    EXPECT_EQ(judge_emotions_json(resumed, nullptr).at("items"), judge_emotions_json(uninterrupted, nullptr).at("items"));

    // Finished: a resume asks nothing, and a torn last line (a crash mid-write) is dropped.
    ScriptedJudge idle = script();
    EXPECT_EQ(run_judge_emotions(file, sample, idle.chat(), resume).judge_calls, 0u);
    EXPECT_EQ(idle.calls, 0);
    std::ofstream(dir / "b/answers.jsonl", std::ios::app) << R"({"comment": "id5", "attem)";
    EXPECT_EQ(run_judge_emotions(file, sample, idle.chat(), resume).judge_calls, 0u);

    // Another sample or seed is another run: refused, naming what differs.
    auto other = resume;
    other.seed = 9;
    EXPECT_NE(error_of([&] { run_judge_emotions(file, sample_goemotions_comments(file, 4, 3), idle.chat(), other); }).find("'comments' differs"),
              std::string::npos);
    EXPECT_NE(error_of([&] { run_judge_emotions(file, sample, idle.chat(), other); }).find("'seed' differs"), std::string::npos);
    // A fresh run into a used folder, and a journal line that is not JSON, are refused too.
    EXPECT_NE(error_of([&] { run_judge_emotions(file, sample, idle.chat(), options_for(dir / "b")); }).find("already holds a run"),
              std::string::npos);
    std::ofstream(dir / "b/answers.jsonl", std::ios::app) << "not json\n";
    EXPECT_NE(error_of([&] { run_judge_emotions(file, sample, idle.chat(), resume); }).find("answers.jsonl line 8"), std::string::npos);
}

TEST(JudgeEmotions, TheSampleIsReproducibleNestedAndInFileOrder) {
    const GoEmotionsFile file = read_goemotions_comments(testing::source_path("data/samples/goemotions/data"));
    EXPECT_EQ(file.path, testing::source_path("data/samples/goemotions/data") + "/dev.tsv");
    ASSERT_EQ(file.comments.size(), 40u);
    const auto ids = [](const std::vector<GoEmotionsComment>& sample) {
        std::vector<std::string> out;
        for (const auto& c : sample) out.push_back(c.id);
        return out;
    };
    const auto a = sample_goemotions_comments(file, 10, 1);
    EXPECT_EQ(ids(a), ids(sample_goemotions_comments(file, 10, 1)));
    EXPECT_NE(ids(a), ids(sample_goemotions_comments(file, 10, 2)));
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end(), [](const auto& x, const auto& y) { return x.line < y.line; }));
    const auto larger = ids(sample_goemotions_comments(file, 20, 1));
    for (const auto& id : ids(a)) EXPECT_NE(std::find(larger.begin(), larger.end(), id), larger.end()) << id;
    EXPECT_EQ(sample_goemotions_comments(file, 40, 1).size(), 40u);
    EXPECT_NE(error_of([&] { sample_goemotions_comments(file, 41, 1); }).find("a sample of 41 comments, but " + file.path + " holds 40"),
              std::string::npos);
    EXPECT_NE(error_of([&] { sample_goemotions_comments(file, 0, 1); }).find("at least 1"), std::string::npos);
}

TEST(JudgeEmotions, BadDataFilesAreRefusedNamingFileAndLine) {
    ScratchDir dir("judge-emotions-bad-data");
    EXPECT_NE(error_of([&] { read_goemotions_comments(dir / "missing.tsv"); }).find(dir / "missing.tsv"), std::string::npos);
    EXPECT_NE(error_of([&] { read_goemotions_comments(dir.path().string()); }).find(dir / "dev.tsv"), std::string::npos);
    const std::string unknown = write_text(dir, "unknown.tsv", "fine\t1\ta\nnot fine\t3,28\tb\n");
    EXPECT_NE(error_of([&] { read_goemotions_comments(unknown); }).find(unknown + ":2: unknown label id 28"), std::string::npos);
    const std::string fields = write_text(dir, "fields.tsv", "fine\t1\ta\nno id\t3\n");
    EXPECT_NE(error_of([&] { read_goemotions_comments(fields); }).find(fields + ":2: expected 3 tab-separated fields"), std::string::npos);
    const std::string twice = write_text(dir, "twice.tsv", "one\t1\ta\ntwo\t2\tb\nthree\t3\ta\n");
    EXPECT_NE(error_of([&] { read_goemotions_comments(twice); }).find(twice + ":3: comment id 'a' appears again (first on line 1)"),
              std::string::npos);
    const std::string empty = write_text(dir, "empty.tsv", "\n");
    EXPECT_NE(error_of([&] { read_goemotions_comments(empty); }).find(empty + ": no comments"), std::string::npos);
}

TEST(JudgeEmotions, TheReaderTakesTheAskedFormAndItsHarmlessWrappings) {
    EXPECT_EQ(parse_judge_emotions(R"({"emotions": ["joy"]})", "t"), (std::vector<int>{17}));
    EXPECT_EQ(parse_judge_emotions("  ```json\n{\"emotions\": [\"Neutral\", \"anger\", \"anger\"]}\n```  ", "t"), (std::vector<int>{2, 27}));
    EXPECT_EQ(parse_judge_emotions("```\n{\"emotions\": [\"fear\"]}```", "t"), (std::vector<int>{14}));
    EXPECT_EQ(parse_judge_emotions("<think>hmm, {\"emotions\": [\"joy\"]}</think>\n{\"emotions\": [\"grief\"]}", "t"), (std::vector<int>{16}));
    // An answer far beyond what the prompt asks for is refused before it is parsed.
    const std::string huge = R"({"emotions": ["joy"]})" + std::string(70000, ' ');
    EXPECT_NE(error_of([&] { parse_judge_emotions(huge, "t"); }).find("t: an answer of 70021 bytes, more than 65536"), std::string::npos);
    const std::string prompt = judge_emotions_prompt("I miss her.");
    EXPECT_NE(prompt.find("admiration, amusement, anger"), std::string::npos);
    EXPECT_NE(prompt.find("surprise, neutral"), std::string::npos);
    EXPECT_NE(prompt.find("<<<\nI miss her.\n>>>"), std::string::npos);
    EXPECT_NE(prompt.find(R"({"emotions": ["label", ...]})"), std::string::npos);
}

TEST(JudgeEmotions, MalformedAnswersAreRefusedWithTheirReason) {
    testing::expect_every_corpus_file_refused(testing::source_path("tests/corpus/judge-emotions-malformed"),
                                              [](const std::filesystem::path& file, const std::string& name) {
                                                  (void)parse_judge_emotions(testing::read_corpus_bytes(file), name);
                                              });
}

TEST(JudgeEmotions, TheReportTableShowsJudgeHeadAndFloorWithTheCaveat) {
    JudgeEmotionsResult result;
    result.sample = 5;
    result.labelled = 4;
    result.failed = 1;
    result.judge = GoEmotionsReport{};
    result.judge->macro_f1 = 0.125;
    result.judge->micro_f1 = 0.25;
    result.judge->examples = 4;
    result.neutral = GoEmotionsReport{};
    result.neutral->examples = 4;
    GoEmotionsReport head;
    head.macro_f1 = 0.5;
    head.examples = 4;
    const Table table = judge_emotions_report_table(result, "smollm2", &head, "SFT emotion head");
    ASSERT_EQ(table.rows.size(), 3u);
    EXPECT_EQ(table.rows[0], (std::vector<std::string>{"judge (smollm2)", "0.125", "0.25", "4"}));
    EXPECT_EQ(table.rows[1][0], "SFT emotion head");
    EXPECT_EQ(table.rows[1][1], "0.5");
    EXPECT_EQ(table.rows[2][0], "always \"neutral\" (floor)");
    EXPECT_NE(table.caption.find("labelled 4 of 5"), std::string::npos);
    EXPECT_NE(table.caption.find("small local judge is weak"), std::string::npos);
}

}  // namespace
}  // namespace kindred::eval
