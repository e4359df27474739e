#include "eval/judge_emotions.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"
#include "data/goemotions.h"
#include "data/labels.h"
#include "eval/eqbench2_run.h"
#include "eval/eqbench3.h"
#include "eval/eqbench3_json.h"
#include "eval/report.h"
#include "eval/run_journal.h"
#include "net/http.h"

namespace kindred::eval {
namespace {

using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

constexpr const char* kRunFormat = "kindred-judge-emotions-run/1";
// A JSON label list is a few hundred bytes; anything far larger is not an answer to this prompt.
constexpr std::size_t kMaxAnswerBytes = 64u << 10;
constexpr int kMaxAnswerDepth = 4;

std::vector<std::string_view> label_names() { return data::emotion_space_labels(data::EmotionSpace::GoEmotions); }

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return out;
}

// The answer without one Markdown fence around it (```json ... ``` or ``` ... ```).
std::string_view unfenced(std::string_view text) {
    if (!text.starts_with("```")) return text;
    const std::size_t newline = text.find('\n');
    if (newline == std::string_view::npos || !text.ends_with("```") || text.size() < newline + 4) return text;
    const std::string_view info = text.substr(3, newline - 3);
    if (!info.empty() && ascii_lower(python_strip(info)) != "json") return text;
    return text.substr(newline + 1, text.size() - 3 - (newline + 1));
}

const char* status_of(const JudgeEmotionsItem& item) { return item.labels ? "labelled" : "failed"; }

std::vector<std::string> names_of(const std::vector<int>& ids) {
    std::vector<std::string> out;
    for (const int id : ids) out.emplace_back(label_names()[static_cast<std::size_t>(id)]);
    return out;
}

}  // namespace

GoEmotionsFile read_goemotions_comments(const std::string& file_or_dir) {
    GoEmotionsFile file;
    file.path = file_or_dir;
    if (fs::is_directory(file_or_dir)) {
        // dev.tsv, or data/dev.tsv (the repository's layout); an error names dev.tsv when neither is there.
        const fs::path base(file_or_dir);
        const bool nested = !fs::is_regular_file(base / "dev.tsv") && fs::is_regular_file(base / "data" / "dev.tsv");
        file.path = (nested ? base / "data" / "dev.tsv" : base / "dev.tsv").string();
    }
    if (!fs::is_regular_file(file.path)) {
        fail("{}: no such GoEmotions file (give a TSV, or a folder holding dev.tsv)", file.path);
    }
    std::map<std::string, std::size_t> first_line;
    data::SourceStats stats;
    data::load_goemotions_file(file.path, "eval", data::LoadOptions{}, stats, [&](data::Example&& example) {
        GoEmotionsComment comment;
        comment.id = example.original.at("comment_id").get<std::string>();
        comment.line = example.original.at("line").get<std::size_t>();
        const auto [it, fresh] = first_line.emplace(comment.id, comment.line);
        if (!fresh) {
            fail("{}:{}: comment id '{}' appears again (first on line {}); a sample names comments by id", file.path, comment.line,
                 comment.id, it->second);
        }
        comment.text = example.messages.back().content;
        const auto names = data::goemotions_labels();
        for (const auto& label : example.source_labels) {
            const auto found =
                std::find_if(names.begin(), names.end(), [&](const data::LabelMapping& m) { return m.source_label == label; });
            comment.labels.push_back(static_cast<int>(found - names.begin()));
        }
        file.comments.push_back(std::move(comment));
    });
    if (file.comments.empty()) fail("{}: no comments", file.path);
    file.sha256 = net::sha256_file(file.path);
    return file;
}

std::vector<GoEmotionsComment> sample_goemotions_comments(const GoEmotionsFile& file, std::size_t size, std::uint64_t seed) {
    if (size == 0) fail("a sample of 0 comments: give at least 1");
    if (size > file.comments.size()) fail("a sample of {} comments, but {} holds {}", size, file.path, file.comments.size());
    std::vector<std::pair<std::uint64_t, std::size_t>> keys;  // (key, index in file)
    for (std::size_t i = 0; i < file.comments.size(); ++i) keys.emplace_back(draw_seed(seed, file.comments[i].id, 0), i);
    std::partial_sort(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(size), keys.end());
    std::vector<std::size_t> chosen;
    for (std::size_t i = 0; i < size; ++i) chosen.push_back(keys[i].second);
    std::sort(chosen.begin(), chosen.end());
    std::vector<GoEmotionsComment> sample;
    for (const std::size_t i : chosen) sample.push_back(file.comments[i]);
    return sample;
}

std::string judge_emotions_prompt(std::string_view comment) {
    return fmt::format(
        "Read the Reddit comment below and label the emotions it expresses, as the GoEmotions annotators did. Choose every "
        "emotion from this list that the comment expresses (most comments express one, some two or three); choose \"neutral\" "
        "when it expresses none.\n\n"
        "Emotions: {}\n\n"
        "Comment:\n<<<\n{}\n>>>\n\n"
        "Answer with one JSON object and nothing else, in this form:\n"
        "{{\"emotions\": [\"label\", ...]}}",
        fmt::join(label_names(), ", "), comment);
}

std::vector<int> parse_judge_emotions(std::string_view answer, const std::string& source) {
    if (answer.size() > kMaxAnswerBytes) fail("{}: an answer of {} bytes, more than {}", source, answer.size(), kMaxAnswerBytes);
    const std::string visible = eqbench3_strip_reasoning(std::string(answer));
    const std::string_view text = python_strip(unfenced(python_strip(visible)));
    if (text.empty()) fail("{}: empty answer", source);
    if (text.front() != '{') fail("{}: the answer is not a JSON object (it starts with '{}')", source, text.substr(0, 20));
    const nlohmann::json object = parse_json(text, source, kMaxAnswerDepth);
    if (!object.is_object()) fail("{}: the answer is not a JSON object", source);
    for (const auto& [key, value] : object.items()) {
        if (key != "emotions") fail("{}: unexpected key '{}' (only \"emotions\" is asked for)", source, key);
    }
    const auto it = object.find("emotions");
    if (it == object.end()) fail("{}: no \"emotions\" key", source);
    if (!it->is_array()) fail("{}: \"emotions\" is not a list", source);
    if (it->empty()) fail("{}: \"emotions\" is an empty list (\"neutral\" is the label for no emotion)", source);
    const auto names = label_names();
    std::vector<int> ids;
    for (const auto& label : *it) {
        if (!label.is_string()) fail("{}: \"emotions\" holds {}, not a label name", source, label.dump());
        const std::string name = ascii_lower(label.get<std::string>());
        const auto found = std::find(names.begin(), names.end(), name);
        if (found == names.end()) fail("{}: unknown label '{}' (not one of the 28 GoEmotions labels)", source, label.get<std::string>());
        ids.push_back(static_cast<int>(found - names.begin()));
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

JudgeEmotionsResult run_judge_emotions(const GoEmotionsFile& file, const std::vector<GoEmotionsComment>& sample,
                                       const Eqb3Chat& judge, const JudgeEmotionsOptions& options) {
    if (options.out.empty()) fail("judge emotions: no run directory given");
    if (options.judge_attempts < 1) fail("judge emotions: judge attempts must be >= 1, got {}", options.judge_attempts);
    if (options.max_tokens < 1) fail("judge emotions: the answer budget must be >= 1 token, got {}", options.max_tokens);
    if (sample.empty()) fail("judge emotions: an empty sample");
    json ids = json::array();
    for (const auto& comment : sample) ids.push_back(comment.id);
    const json config = {{"format", kRunFormat},
                         {"data_sha256", file.sha256},
                         {"comments", ids},
                         {"seed", options.seed},
                         {"prompt", judge_emotions_prompt("{comment}")},
                         {"judge", json::parse(options.judge_identity.dump())},
                         {"judge_attempts", options.judge_attempts},
                         {"max_tokens", options.max_tokens},
                         {"info", {{"data", file.path}, {"judge", json::parse(options.info.dump())}}}};
    open_run_directory(options.out, options.resume, config);

    JudgeEmotionsResult result;
    result.sample = sample.size();
    std::map<std::string, std::size_t> index;
    for (const auto& comment : sample) {
        index[comment.id] = result.items.size();
        result.items.push_back({comment.id, comment.line, 0, std::nullopt, ""});
    }
    Journal journal(options.out + "/answers.jsonl");
    const auto records = journal.read();
    for (std::size_t i = 0; i < records.size(); ++i) {
        const std::string where = fmt::format("{} line {}", journal.path(), i + 1);
        const std::string id = journal_string(records[i], "comment", where);
        const auto it = index.find(id);
        if (it == index.end()) fail("{}: comment '{}' is not in the sample", where, id);
        JudgeEmotionsItem& item = result.items[it->second];
        ++item.attempts;
        ++result.answers_total;
        result.prompt_tokens += std::max<std::int64_t>(0, records[i].value("prompt_tokens", std::int64_t{0}));
        result.completion_tokens += std::max<std::int64_t>(0, records[i].value("completion_tokens", std::int64_t{0}));
        // The answer is read again rather than trusting a stored verdict: a reader fix applies.
        try {
            if (!item.labels) item.labels = parse_judge_emotions(journal_string(records[i], "text", where), "answer");
        } catch (const Error& error) {
            item.error = error.what();
            ++result.unparsed_answers;
        }
    }

    std::optional<Progress> progress;
    if (options.progress) {
        ProgressOptions look;
        look.label = "judge";
        look.unit = "comment";
        progress.emplace(static_cast<std::int64_t>(sample.size()), std::move(look));
    }
    const auto fields = [&] {
        return std::vector<ProgressField>{{"calls", static_cast<double>(result.judge_calls)},
                                          {"unparsed", static_cast<double>(result.unparsed_answers)}};
    };
    for (std::size_t i = 0; i < sample.size(); ++i) {
        JudgeEmotionsItem& item = result.items[i];
        while (!item.labels && item.attempts < options.judge_attempts) {
            const bool retry = item.attempts > 0;
            const Eqb3ChatSettings settings{retry ? kJudgeEmotionsRetryTemperature : 0.0, std::nullopt, options.max_tokens};
            const auto start = std::chrono::steady_clock::now();
            const Eqb3Reply reply = judge({{"user", judge_emotions_prompt(sample[i].text)}}, settings,
                                          draw_seed(options.seed, sample[i].id, item.attempts));
            ++item.attempts;
            ++result.judge_calls;
            ++result.answers_total;
            json record = {{"comment", sample[i].id}, {"line", sample[i].line}, {"attempt", item.attempts}, {"text", reply.text}};
            try {
                item.labels = parse_judge_emotions(reply.text, "answer");
                record["parsed"] = true;
                record["labels"] = names_of(*item.labels);
            } catch (const Error& error) {
                item.error = error.what();
                ++result.unparsed_answers;
                record["parsed"] = false;
                record["error"] = item.error;
            }
            record["prompt_tokens"] = reply.prompt_tokens;
            record["completion_tokens"] = reply.completion_tokens;
            record["finish"] = reply.finish_reason;
            record["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            journal.append(record);
            result.prompt_tokens += std::max<std::int64_t>(0, reply.prompt_tokens);
            result.completion_tokens += std::max<std::int64_t>(0, reply.completion_tokens);
        }
        if (progress) progress->update(static_cast<std::int64_t>(i + 1), fields());
    }
    if (progress) progress->finish(fields());

    std::vector<std::vector<int>> truth, predicted, neutral;
    const auto names = label_names();
    const int neutral_id = static_cast<int>(std::find(names.begin(), names.end(), "neutral") - names.begin());
    for (std::size_t i = 0; i < sample.size(); ++i) {
        const JudgeEmotionsItem& item = result.items[i];
        if (!item.labels) {
            ++result.failed;
            continue;
        }
        ++result.labelled;
        truth.push_back(sample[i].labels);
        predicted.push_back(*item.labels);
        neutral.push_back({neutral_id});
        result.labelled_lines.push_back(sample[i].line);
    }
    if (!truth.empty()) {
        result.judge = goemotions_report(truth, predicted);
        result.neutral = goemotions_report(truth, neutral);
    }
    write_judge_emotions_results(options.out, result, nullptr);
    return result;
}

nlohmann::ordered_json judge_emotions_json(const JudgeEmotionsResult& result, const GoEmotionsReport* head) {
    const auto scores = [](const std::optional<GoEmotionsReport>& report, bool per_label) -> json {
        if (!report) return nullptr;
        json out = {{"examples", report->examples}, {"macro_f1", report->macro_f1}, {"micro_f1", report->micro_f1}};
        if (per_label) {
            json labels = json::object();
            for (const auto& label : report->labels) {
                labels[label.label] = {{"precision", label.precision}, {"recall", label.recall}, {"f1", label.f1},
                                       {"support", label.support}, {"predicted", label.predicted}};
            }
            out["labels"] = labels;
        }
        return out;
    };
    json items = json::array();
    for (const auto& item : result.items) {
        json entry = {{"comment", item.comment}, {"line", item.line}, {"status", status_of(item)}, {"attempts", item.attempts}};
        if (item.labels) entry["labels"] = names_of(*item.labels);
        else entry["error"] = item.error;
        items.push_back(entry);
    }
    json out = {{"sample", result.sample},
                {"labelled", result.labelled},
                {"failed", result.failed},
                {"judge", scores(result.judge, true)},
                {"neutral_baseline", scores(result.neutral, false)},
                {"head", head ? scores(*head, true) : json(nullptr)},
                {"judge_calls", result.judge_calls},
                {"answers_total", result.answers_total},
                {"unparsed_answers", result.unparsed_answers},
                {"prompt_tokens", result.prompt_tokens},
                {"completion_tokens", result.completion_tokens},
                {"items", items}};
    if (head) out["head"]["space"] = head->head_space;
    return out;
}

void write_judge_emotions_results(const std::string& out, const JudgeEmotionsResult& result, const GoEmotionsReport* head) {
    const json results = judge_emotions_json(result, head);
    write_file_atomically(out + "/results.json", results.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

Table judge_emotions_report_table(const JudgeEmotionsResult& result, const std::string& judge_name, const GoEmotionsReport* head,
                                  const std::string& head_name) {
    Table table;
    table.caption = fmt::format(
        "Judge consistency check: the judge labelled {} of {} GoEmotions comments ({} failed to give a readable answer and are "
        "left out, not scored); macro-F1 over all 28 labels against the gold labels, on the comments it labelled. A small local "
        "judge is weak: a figure near the always-neutral floor says the judge cannot read emotions, and its EQ-Bench 3 grades "
        "mean little.",
        result.labelled, result.sample, result.failed);
    table.header = {"labeller", "macro-F1", "micro-F1", "comments"};
    const auto row = [&](const std::string& name, const std::optional<GoEmotionsReport>& report) {
        table.rows.push_back({name, report ? format_metric(report->macro_f1) : "—", report ? format_metric(report->micro_f1) : "—",
                              fmt::format("{}", report ? report->examples : 0)});
    };
    row("judge (" + judge_name + ")", result.judge);
    if (head) row(head_name, *head);
    row("always \"neutral\" (floor)", result.neutral);
    return table;
}

}  // namespace kindred::eval
