// eval/eqbench3_run.h — running EQ-Bench 3 and comparing runs, with results that survive.
//
// A run walks the chosen scenarios in file order; for each: every canned turn (the tested model
// answers, eqbench3.h's settings), the debrief (role-play and drafting), then the rubric judge.
// Everything that arrives is appended to the run directory as it arrives, one JSON line written
// with one write() and fsynced (eval/run_journal.h):
//   config.json    what was run: model and judge identity, data files' sha256, scenarios, seed,
//                  reply budget (written once, atomically; a resume must match it)
//   replies.jsonl  {"scenario", "step": "turn"|"debrief"|"error", "turn", "text", tokens, seconds}
//   judge.jsonl    {"scenario", "attempt", "text", "parsed", "scores"?}: every judge answer, parsed
//                  or not
//   results.json   the summary (rewritten atomically at the end)
// A crash can tear only the last line; reading drops a torn last line (no newline) and truncates
// it away, while a complete line that is not JSON is an Error naming file and line. `resume`
// continues where the journals end: nothing answered is asked again. A judge answer that does not
// parse is asked again up to judge_attempts times in all, then the scenario is recorded as
// failed and left out of the score (never scored from a guess). A tested model that cannot answer
// (Eqb3ReplyRefused: the conversation outgrew its context) ends that scenario with an "error"
// step; any other Error from the model or the judge (an endpoint down after its retries) stops
// the run with the progress kept.
//
// Comparing runs (eqbench3_compare): every pair of runs meets on every scenario both finished
// (analysis: rubric scored; others: debrief given; both with a reply of >= 100 characters), each
// in both orders (A0493/A0488 swapped), judged with the pairwise prompt; answers go to
// <out>/pairwise.jsonl under the same rules, then eqbench3_score.h's TrueSkill rates the runs.
// The official harness picks matchups adaptively against its leaderboard; with a handful of local
// runs its last stage judges every common scenario of every pair within 3 ranks anyway, which is
// the round-robin done here. Without anchor runs the ratings are raw TrueSkill among the given
// runs (mu 1200): comparable with each other only, not with the leaderboard.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/eqbench3.h"
#include "eval/eqbench3_score.h"

namespace kindred::infer { class LoadedModel; }
namespace kindred::net { class ChatClient; }

namespace kindred::eval {

struct Eqb3ChatSettings {
    double temperature = 0.0;
    std::optional<double> min_p;  // sent only when set
    std::int64_t max_tokens = 0;
};

struct Eqb3Reply {
    std::string text;  // as received (reasoning blocks are stripped by the caller)
    std::int64_t prompt_tokens = -1;
    std::int64_t completion_tokens = -1;
    std::string finish_reason;
};

// One chat completion; `seed` is for samplers that take one (an endpoint may ignore it).
using Eqb3Chat = std::function<Eqb3Reply(const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t seed)>;

// The tested model cannot answer this conversation at all (it outgrew the context window).
class Eqb3ReplyRefused : public Error {
public:
    using Error::Error;
};

// `model` generating in this process: each call starts from an empty KV cache (so a resumed run
// draws exactly what an uninterrupted one would), samples with temperature and min-p only (no
// top-k/top-p/penalties, as an OpenAI-style endpoint given just those), and stops at the context
// window; a prompt that leaves no room is Eqb3ReplyRefused.
Eqb3Chat eqbench3_local_chat(infer::LoadedModel& model);
// The same with `model`'s adapter detached for each reply: its base model (an adapter's base is the
// same decoder without it, model/decoder.h).
Eqb3Chat eqbench3_local_base_chat(infer::LoadedModel& model);
// An OpenAI-compatible endpoint (net/openai_chat.h); the client must outlive the function.
Eqb3Chat eqbench3_endpoint_chat(net::ChatClient& client);

struct Eqb3RunOptions {
    std::string out;                  // the run directory
    bool resume = false;              // continue `out` (its config must match)
    std::vector<std::string> scenarios;  // ids; empty = every kept scenario
    std::string name;                 // the model's logical name (unique among compared runs)
    nlohmann::json identity;          // {"model": ..., "judge": ...}: stored, compared on resume
    nlohmann::json info;              // stored only (endpoint URLs: a judge may move to another port)
    std::uint64_t seed = 0;
    std::int64_t max_reply_tokens = kEqBench3ReplyMaxTokens;
    int judge_attempts = 3;
    bool progress = true;
};

struct Eqb3TaskResult {
    std::string scenario;
    Eqb3Kind kind = Eqb3Kind::RolePlay;
    // "scored", "judge failed" (no parseable answer in judge_attempts), "error" (the model could
    // not answer), "too short" (no reply of 100 characters: the harness skips such tasks),
    // "unscored" (parsed, but none of the counted criteria given)
    std::string status;
    std::string detail;
    std::optional<double> score;  // 0-20
    Eqb3Scores scores;            // every criterion the judge gave
    Eqb3TaskScore task;
};

struct Eqb3RunResult {
    std::string name;
    std::optional<double> rubric_score_0_20;  // round(mean, 2)
    std::optional<double> rubric_score;       // x5: the official 0-100
    std::size_t scenarios = 0;                // chosen
    std::size_t scored = 0;
    std::vector<Eqb3TaskResult> tasks;
    // Mean per criterion over scored tasks (every criterion the judges gave, style ones too).
    std::map<std::string, double> criterion_means;
    std::size_t out_of_range = 0;  // counted scores outside 0-20 (kept, as the harness keeps them)
    std::size_t missing = 0;       // counted criteria the judge left out
    // This invocation: model replies generated and judge calls answered; the journals' totals.
    std::size_t replies_generated = 0;
    std::size_t judge_calls = 0;
    std::size_t replies_total = 0;
    std::size_t judge_answers_total = 0;
};

Eqb3RunResult run_eqbench3(const Eqb3Data& data, const Eqb3Chat& tested, const Eqb3Chat& judge, const Eqb3RunOptions& options);

// Reads a run directory (journals and config) and scores it without calling anything.
struct Eqb3LoadedRun {
    std::string dir;
    nlohmann::json config;
    std::map<std::string, Eqb3Transcript> transcripts;  // scenario id -> what the model said
    Eqb3RunResult result;
};
Eqb3LoadedRun load_eqbench3_run(const Eqb3Data& data, const std::string& dir);

struct Eqb3CompareOptions {
    std::string out;  // pairwise.jsonl, compare.json, compare.md, criteria.svg
    int judge_attempts = 3;
    nlohmann::json judge_identity;
    bool progress = true;
};

struct Eqb3CompareRow {
    std::string name;
    std::string dir;
    std::optional<double> rubric_score;  // 0-100
    std::size_t scored = 0;
    std::size_t scenarios = 0;
    Eqb3Elo elo;
    std::map<std::string, double> criterion_means;
};

struct Eqb3CompareResult {
    std::vector<Eqb3CompareRow> rows;  // given order
    std::size_t matches = 0;           // (pair, scenario) matchups judged in both orders
    std::size_t judge_calls = 0;       // this invocation
    std::size_t failed = 0;            // orders with no parseable answer
    bool normalised = false;           // both official anchors were among the runs
    std::string markdown;              // the table as written to compare.md
};

Eqb3CompareResult eqbench3_compare(const Eqb3Data& data, const std::vector<std::string>& run_dirs, const Eqb3Chat& judge,
                                   const Eqb3CompareOptions& options);

// Several models on the same scenarios (the demo's stage: base, SFT, SFT+DPO): each runs into
// <out>/<name>, resuming whatever its folder already holds, then all are compared pairwise in
// <out>/compare, rows in the given order.
struct Eqb3Contestant {
    std::string name;  // the run folder's and the table row's name
    Eqb3Chat chat;
};
struct Eqb3ContestOptions {
    std::string out;
    std::vector<std::string> scenarios;
    std::int64_t max_reply_tokens = kEqBench3ReplyMaxTokens;
    nlohmann::json identity;  // model and judge, as run_eqbench3 stores them (plus "variant": the name)
    bool progress = true;
};
Eqb3CompareResult eqbench3_contest(const Eqb3Data& data, const std::vector<Eqb3Contestant>& contestants,
                                   const Eqb3Chat& judge, const Eqb3ContestOptions& options);

// The comparison as a report table (eval/report.h) and its bars as a report chart.
struct Table;
struct Chart;
Table eqbench3_report_table(const Eqb3CompareResult& result);
Chart eqbench3_report_chart(const Eqb3CompareResult& result);

// The comparison table (Markdown) and the per-criterion bar chart (SVG) of a comparison.
std::string eqbench3_compare_markdown(const Eqb3CompareResult& result);
std::string eqbench3_criteria_svg(const std::vector<Eqb3CompareRow>& rows);

}  // namespace kindred::eval
