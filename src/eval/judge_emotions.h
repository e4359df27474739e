// eval/judge_emotions.h — the judge consistency check: the judge model of EQ-Bench 3 (or any
// OpenAI-compatible chat endpoint) labels a reproducible sample of GoEmotions comments with
// emotions from the 28-label list, and its labels are scored against the gold ones exactly as an
// emotion head is scored (eval/goemotions_eval.h: macro-F1 over all 28 labels, micro-F1, per-label
// F1, scikit-learn's multi-label semantics). A sanity figure for the judge: one that cannot tell
// gratitude from anger says little when it grades empathy.
//
// The sample: each comment's key is draw_seed(seed, comment id, 0) (eval/eqbench2_run.h); the
// `size` comments with the smallest keys are taken and kept in file order. So a sample depends
// only on (file contents, size, seed), and a larger sample of the same seed holds a smaller one.
//
// The prompt (judge_emotions_prompt) lists the 28 labels in emotions.txt order, says the comment is
// multi-label (every emotion it expresses; "neutral" for none) and asks for one JSON object
// {"emotions": [...]} and nothing else. The first ask is at temperature 0; a retry (after an answer
// that does not parse) is at temperature 0.7 with its own seed, since a deterministic judge asked
// the same thing at temperature 0 would only say it again.
//
// Reading an answer (parse_judge_emotions) is strict: <think> blocks and surrounding whitespace are
// dropped, and one Markdown code fence around the object is allowed; then the answer must be exactly
// one JSON object whose only key is "emotions", a non-empty list of label names from the 28
// (ASCII case ignored, a repeat counted once). Anything else (no JSON, trailing text, another key,
// an unknown label, an empty list) is refused with the reason; the comment is asked again, up to
// `judge_attempts` answers in all, then recorded as failed: counted, never scored, never read as
// "neutral".
//
// The run directory (eval/run_journal.h): config.json (data file sha256, sample ids, seed, prompt,
// judge identity), answers.jsonl (every answer as it arrives: comment, line, attempt, text, parsed,
// labels or error, tokens, seconds), results.json (the summary, rewritten atomically at the end).
// `resume` asks nothing already answered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/eqbench3_run.h"
#include "eval/goemotions_eval.h"

namespace kindred::eval {

struct Table;

inline constexpr double kJudgeEmotionsRetryTemperature = 0.7;

struct GoEmotionsComment {
    std::string id;     // the comment id (third column)
    std::size_t line = 0;
    std::string text;
    std::vector<int> labels;  // gold GoEmotions ids, as the file gives them
};

struct GoEmotionsFile {
    std::string path;    // the TSV read (a folder's dev.tsv)
    std::string sha256;  // of its bytes: a run records it, a resume must match it
    std::vector<GoEmotionsComment> comments;
};

// A GoEmotions-format TSV, or a folder holding dev.tsv (or data/dev.tsv: the repository layout).
// Errors name the file and line (data/goemotions.h: field count, label ids, UTF-8, empty text), a
// comment id used twice (both lines), a missing file, or a file without comments.
GoEmotionsFile read_goemotions_comments(const std::string& file_or_dir);

// `size` comments of `comments` (see the top of this file); Error when size is 0 or more than there are.
std::vector<GoEmotionsComment> sample_goemotions_comments(const GoEmotionsFile& file, std::size_t size, std::uint64_t seed);

// The user message that asks the judge to label `comment`.
std::string judge_emotions_prompt(std::string_view comment);

// GoEmotions ids (ascending, distinct) of the judge's answer; Error "<source>: <reason>" when it
// does not read as the top of this file says.
std::vector<int> parse_judge_emotions(std::string_view answer, const std::string& source);

struct JudgeEmotionsOptions {
    std::string out;     // the run directory
    bool resume = false;
    std::uint64_t seed = 0;  // the sample's (stored) and the retries' draws
    nlohmann::json judge_identity;  // stored, compared on resume
    nlohmann::json info;            // stored only (the judge's URL)
    int judge_attempts = 3;
    std::int64_t max_tokens = 512;  // per answer: room for a reasoning judge's <think> block
    bool progress = true;
};

struct JudgeEmotionsItem {
    std::string comment;
    std::size_t line = 0;
    int attempts = 0;
    std::optional<std::vector<int>> labels;  // the judge's, when an answer parsed
    std::string error;                       // why the last answer did not parse
};

struct JudgeEmotionsResult {
    std::size_t sample = 0;
    std::size_t labelled = 0;  // comments with a parsed answer
    std::size_t failed = 0;    // no parsed answer in judge_attempts
    std::optional<GoEmotionsReport> judge;    // over the labelled comments; none when none was
    std::optional<GoEmotionsReport> neutral;  // "neutral" for every labelled comment: the floor to beat
    std::vector<std::size_t> labelled_lines;  // for scoring a head on the same comments
    std::size_t judge_calls = 0;         // this invocation
    std::size_t answers_total = 0;       // in the journal
    std::size_t unparsed_answers = 0;    // in the journal
    std::int64_t prompt_tokens = 0;      // reported by the judge, journal totals
    std::int64_t completion_tokens = 0;
    std::vector<JudgeEmotionsItem> items;  // sample order
};

// Asks `judge` about every comment of `sample` (drawn from `file`) not yet answered in
// options.out, then scores. An Error from the judge itself (an endpoint down after its retries)
// stops the run with every answer so far kept.
JudgeEmotionsResult run_judge_emotions(const GoEmotionsFile& file, const std::vector<GoEmotionsComment>& sample,
                                       const Eqb3Chat& judge, const JudgeEmotionsOptions& options);

// results.json's content; `head` (an emotion head scored on the labelled comments) when given.
nlohmann::ordered_json judge_emotions_json(const JudgeEmotionsResult& result, const GoEmotionsReport* head);
void write_judge_emotions_results(const std::string& out, const JudgeEmotionsResult& result, const GoEmotionsReport* head);

// The report's table: the judge, the neutral floor and (when given) the head, with the caveats.
Table judge_emotions_report_table(const JudgeEmotionsResult& result, const std::string& judge_name,
                                  const GoEmotionsReport* head, const std::string& head_name);

}  // namespace kindred::eval
