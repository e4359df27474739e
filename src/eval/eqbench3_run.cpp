#include "eval/eqbench3_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/progress.h"
#include "eval/eqbench2_run.h"
#include "eval/plot.h"
#include "eval/report.h"
#include "eval/run_journal.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "net/openai_chat.h"

namespace kindred::eval {
namespace {

using json = nlohmann::ordered_json;

constexpr std::uintmax_t kMaxConfigBytes = 16u << 20;
constexpr int kDebriefDraw = 1000;  // draw_seed's attempt for the debrief (turns use their index)
constexpr const char* kRunFormat = "kindred-eqbench3-run/1";

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Progress is neither copied nor moved: it is built in place when wanted.
void start_progress(std::optional<Progress>& progress, bool wanted, const char* label, const char* unit, std::size_t total) {
    if (!wanted) return;
    ProgressOptions look;
    look.label = label;
    look.unit = unit;
    progress.emplace(static_cast<std::int64_t>(total), std::move(look));
}

// What the journals say about one scenario.
struct ScenarioState {
    std::vector<std::string> turns;
    std::optional<std::string> debrief;
    std::optional<std::string> error;
    int judge_attempts = 0;
    std::optional<Eqb3Scores> scores;  // the parsed answer, when one parsed
};

void replay_replies(const std::vector<nlohmann::json>& records, const std::string& path, std::map<std::string, ScenarioState>& states) {
    for (std::size_t i = 0; i < records.size(); ++i) {
        const std::string where = fmt::format("{} line {}", path, i + 1);
        const auto& r = records[i];
        ScenarioState& state = states[journal_string(r, "scenario", where)];
        const std::string step = journal_string(r, "step", where);
        if (step == "turn") {
            const auto turn = r.value("turn", static_cast<std::size_t>(-1));
            if (turn != state.turns.size()) fail("{}: turn {} out of order (expected {})", where, turn, state.turns.size());
            state.turns.push_back(journal_string(r, "text", where));
        } else if (step == "debrief") {
            state.debrief = journal_string(r, "text", where);
        } else if (step == "error") {
            state.error = journal_string(r, "error", where);
        } else {
            fail("{}: unknown step '{}'", where, step);
        }
    }
}

void replay_judge(const std::vector<nlohmann::json>& records, const std::string& path, std::map<std::string, ScenarioState>& states) {
    for (std::size_t i = 0; i < records.size(); ++i) {
        const std::string where = fmt::format("{} line {}", path, i + 1);
        ScenarioState& state = states[journal_string(records[i], "scenario", where)];
        ++state.judge_attempts;
        // The answer is parsed again rather than trusting a stored verdict: a parser fix applies.
        if (!state.scores) state.scores = eqbench3_parse_rubric(journal_string(records[i], "text", where));
    }
}

Eqb3Transcript transcript_of(const Eqb3Data& data, const Eqb3Scenario& scenario, const ScenarioState& state) {
    Eqb3Transcript t;
    t.scenario = &scenario;
    for (std::size_t turn = 0; turn < state.turns.size(); ++turn) {
        t.conversation.push_back({"user", eqbench3_turn_prompt(data, scenario, turn)});
        t.conversation.push_back({"assistant", state.turns[turn]});
    }
    t.debrief = state.debrief;
    return t;
}

bool finished(const Eqb3Scenario& scenario, const ScenarioState& state) {
    if (state.error || state.turns.size() < scenario.prompts.size()) return false;
    return scenario.kind == Eqb3Kind::Analysis || state.debrief.has_value();
}

Eqb3TaskResult task_result(const Eqb3Data& data, const Eqb3Scenario& scenario, const ScenarioState& state, int judge_attempts) {
    Eqb3TaskResult task;
    task.scenario = scenario.id;
    task.kind = scenario.kind;
    if (state.error) {
        task.status = "error";
        task.detail = *state.error;
    } else if (!finished(scenario, state)) {
        task.status = "unfinished";
    } else if (!eqbench3_has_substantial_reply(transcript_of(data, scenario, state))) {
        task.status = "too short";
        task.detail = fmt::format("no reply of {} characters; the harness does not judge such tasks", kEqBench3MinReplyChars);
    } else if (state.scores) {
        task.scores = *state.scores;
        task.task = eqbench3_task_score(*state.scores, scenario.kind, data.analysis_rubric_criteria);
        task.score = task.task.score;
        task.status = task.score ? "scored" : "unscored";
        if (!task.score) task.detail = "the judge gave none of the criteria that count";
    } else if (state.judge_attempts >= judge_attempts) {
        task.status = "judge failed";
        task.detail = fmt::format("no parseable answer in {} attempts", state.judge_attempts);
    } else {
        task.status = "unjudged";
    }
    return task;
}

Eqb3RunResult summarise(const Eqb3Data& data, const std::vector<const Eqb3Scenario*>& scenarios, const std::map<std::string, ScenarioState>& states,
                        int judge_attempts) {
    Eqb3RunResult result;
    result.scenarios = scenarios.size();
    std::vector<double> task_scores;
    std::map<std::string, std::pair<double, std::size_t>> sums;
    static const ScenarioState empty;
    for (const Eqb3Scenario* scenario : scenarios) {
        const auto it = states.find(scenario->id);
        Eqb3TaskResult task = task_result(data, *scenario, it == states.end() ? empty : it->second, judge_attempts);
        if (task.score) {
            task_scores.push_back(*task.score);
            ++result.scored;
            result.out_of_range += task.task.out_of_range;
            result.missing += task.task.missing;
            for (const auto& [criterion, score] : task.scores) {
                auto& [sum, count] = sums[criterion];
                sum += score;
                ++count;
            }
        }
        result.tasks.push_back(std::move(task));
    }
    for (const auto& [criterion, sum_count] : sums) result.criterion_means[criterion] = sum_count.first / static_cast<double>(sum_count.second);
    result.rubric_score_0_20 = eqbench3_rubric_score(task_scores);
    if (result.rubric_score_0_20) result.rubric_score = *result.rubric_score_0_20 * 5.0;
    for (const auto& [id, state] : states) {
        result.replies_total += state.turns.size() + (state.debrief ? 1 : 0);
        result.judge_answers_total += static_cast<std::size_t>(state.judge_attempts);
    }
    return result;
}

json results_json(const Eqb3RunResult& result) {
    json tasks = json::array();
    for (const auto& task : result.tasks) {
        json scores = json::object();
        for (const auto& [criterion, score] : task.scores) scores[criterion] = score;
        tasks.push_back({{"scenario", task.scenario},
                         {"kind", eqbench3_kind_name(task.kind)},
                         {"status", task.status},
                         {"detail", task.detail},
                         {"score", task.score ? json(*task.score) : json(nullptr)},
                         {"scores", scores}});
    }
    json means = json::object();
    for (const auto& [criterion, mean] : result.criterion_means) means[criterion] = mean;
    return {{"name", result.name},
            {"rubric_score", result.rubric_score ? json(*result.rubric_score) : json(nullptr)},
            {"rubric_score_0_20", result.rubric_score_0_20 ? json(*result.rubric_score_0_20) : json(nullptr)},
            {"scenarios", result.scenarios},
            {"scored", result.scored},
            {"out_of_range_scores", result.out_of_range},
            {"missing_criteria", result.missing},
            {"replies_total", result.replies_total},
            {"judge_answers_total", result.judge_answers_total},
            {"criterion_means", means},
            {"tasks", tasks}};
}

std::vector<const Eqb3Scenario*> chosen_scenarios(const Eqb3Data& data, const std::vector<std::string>& ids) {
    std::vector<const Eqb3Scenario*> chosen;
    if (ids.empty()) {
        for (const auto& scenario : data.scenarios.kept) chosen.push_back(&scenario);
        return chosen;
    }
    for (const auto& id : ids) {
        const Eqb3Scenario* scenario = data.find(id);
        if (scenario == nullptr) {
            for (const auto& skipped : data.scenarios.skipped) {
                if (skipped.id == id) fail("scenario '{}' is skipped by the official parser ({}, line {})", id, skipped.reason, skipped.line);
            }
            fail("scenario '{}' is not in {}/scenario_prompts.txt", id, data.dir);
        }
        if (std::find(chosen.begin(), chosen.end(), scenario) == chosen.end()) chosen.push_back(scenario);
    }
    // File order, whatever order they were named in.
    std::sort(chosen.begin(), chosen.end(), [](const Eqb3Scenario* a, const Eqb3Scenario* b) { return a->line < b->line; });
    return chosen;
}

json run_config(const Eqb3Data& data, const Eqb3RunOptions& options, const std::vector<const Eqb3Scenario*>& scenarios) {
    json ids = json::array();
    for (const auto* scenario : scenarios) ids.push_back(scenario->id);
    json files = json::object();
    for (const auto& [name, sha] : data.fingerprints) files[name] = sha;
    return {{"format", kRunFormat},
            {"name", options.name},
            {"identity", json::parse(options.identity.dump())},
            {"data", files},
            {"scenarios", ids},
            {"seed", options.seed},
            {"max_reply_tokens", options.max_reply_tokens},
            {"judge_attempts", options.judge_attempts},
            {"info", json::parse(options.info.dump())}};
}

}  // namespace

Eqb3Chat eqbench3_local_base_chat(infer::LoadedModel& model) {
    Eqb3Chat tuned = eqbench3_local_chat(model);
    return [&model, tuned](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t seed) {
        const model::Decoder::AdapterDetached base(model.decoder());
        return tuned(messages, settings, seed);
    };
}

Eqb3Chat eqbench3_local_chat(infer::LoadedModel& model) {
    auto session = std::make_shared<infer::Session>(model.decoder(), model.tokenizer());
    return [&model, session](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t seed) {
        std::vector<text::ChatMessage> chat;
        for (const auto& m : messages) chat.push_back({m.role, m.content, {}});
        const auto prompt = model.encode_chat(chat);
        const auto context = session->context();
        if (static_cast<std::int64_t>(prompt.size()) >= context) {
            throw Eqb3ReplyRefused(fmt::format("the conversation has {} tokens and the model's context holds {}", prompt.size(), context));
        }
        infer::GenerationOptions generation;
        generation.max_tokens = std::min(settings.max_tokens, context - static_cast<std::int64_t>(prompt.size()));
        generation.stop_tokens = model.stop_tokens();
        generation.stop_strings = model.stop_strings();
        generation.harmony = model.harmony();
        generation.sampling.temperature = static_cast<float>(settings.temperature);
        generation.sampling.min_p = static_cast<float>(settings.min_p.value_or(0.0));
        generation.sampling.top_k = 0;
        generation.sampling.top_p = 1.0f;
        generation.sampling.repeat_penalty = 1.0f;
        generation.sampling.seed = seed;
        session->reset();
        const infer::GenerationResult result = session->generate(prompt, generation);
        return Eqb3Reply{result.text, result.prompt_tokens, static_cast<std::int64_t>(result.tokens.size()),
                         infer::finish_reason_name(result.finish_reason)};
    };
}

Eqb3Chat eqbench3_endpoint_chat(net::ChatClient& client) {
    return [&client](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t) {
        net::ChatCompletionRequest request;
        for (const auto& m : messages) request.messages.push_back({m.role, m.content});
        request.temperature = settings.temperature;
        request.min_p = settings.min_p;
        request.max_tokens = settings.max_tokens;
        const net::ChatCompletion completion = client.complete(request);
        return Eqb3Reply{completion.content, completion.prompt_tokens, completion.completion_tokens, completion.finish_reason};
    };
}

Eqb3RunResult run_eqbench3(const Eqb3Data& data, const Eqb3Chat& tested, const Eqb3Chat& judge, const Eqb3RunOptions& options) {
    if (options.out.empty()) fail("EQ-Bench 3: no run directory given");
    if (options.judge_attempts < 1) fail("EQ-Bench 3: judge attempts must be >= 1, got {}", options.judge_attempts);
    if (options.max_reply_tokens < 1) fail("EQ-Bench 3: the reply budget must be >= 1 token, got {}", options.max_reply_tokens);
    const auto scenarios = chosen_scenarios(data, options.scenarios);
    open_run_directory(options.out, options.resume, run_config(data, options, scenarios));

    Journal replies(options.out + "/replies.jsonl");
    Journal judge_log(options.out + "/judge.jsonl");
    std::map<std::string, ScenarioState> states;
    replay_replies(replies.read(), options.out + "/replies.jsonl", states);
    replay_judge(judge_log.read(), options.out + "/judge.jsonl", states);

    std::size_t generated = 0;
    std::size_t judge_calls = 0;
    std::optional<Progress> progress;
    start_progress(progress, options.progress, "eqbench3", "scenario", scenarios.size());
    const auto generate = [&](const std::vector<Eqb3Message>& messages, const Eqb3ChatSettings& settings, std::uint64_t seed, json record) {
        const auto start = std::chrono::steady_clock::now();
        const Eqb3Reply reply = tested(messages, settings, seed);
        std::string text = eqbench3_strip_reasoning(reply.text);
        record["prompt_tokens"] = reply.prompt_tokens;
        record["completion_tokens"] = reply.completion_tokens;
        record["finish"] = reply.finish_reason;
        record["seconds"] = seconds_since(start);
        ++generated;
        return std::pair{std::move(text), std::move(record)};
    };

    std::size_t done = 0;
    for (const Eqb3Scenario* scenario : scenarios) {
        ScenarioState& state = states[scenario->id];
        try {
            std::vector<Eqb3Message> conversation;
            for (std::size_t turn = 0; turn < scenario->prompts.size() && !state.error; ++turn) {
                conversation.push_back({"user", eqbench3_turn_prompt(data, *scenario, turn)});
                if (turn >= state.turns.size()) {
                    auto [text, record] = generate(conversation, {kEqBench3TurnTemperature, kEqBench3TurnMinP, options.max_reply_tokens},
                                                   draw_seed(options.seed, scenario->id, static_cast<int>(turn)),
                                                   json{{"scenario", scenario->id}, {"step", "turn"}, {"turn", turn}});
                    record["text"] = text;
                    replies.append(record);
                    state.turns.push_back(std::move(text));
                }
                conversation.push_back({"assistant", state.turns[turn]});
            }
            if (!state.error && scenario->kind != Eqb3Kind::Analysis && !state.debrief) {
                conversation.push_back({"user", data.debrief_prompt});
                auto [text, record] = generate(conversation, {kEqBench3DebriefTemperature, std::nullopt, options.max_reply_tokens},
                                               draw_seed(options.seed, scenario->id, kDebriefDraw),
                                               json{{"scenario", scenario->id}, {"step", "debrief"}});
                text = std::string(python_strip(text));  // run_debrief keeps response.strip()
                record["text"] = text;
                replies.append(record);
                state.debrief = std::move(text);
            }
        } catch (const Eqb3ReplyRefused& refused) {
            state.error = fmt::format("turn {}: {}", state.turns.size() + 1, refused.what());
            replies.append(json{{"scenario", scenario->id}, {"step", "error"}, {"turn", state.turns.size()}, {"error", *state.error}});
        }
        if (finished(*scenario, state)) {
            const Eqb3Transcript transcript = transcript_of(data, *scenario, state);
            if (eqbench3_has_substantial_reply(transcript)) {
                std::optional<std::string> prompt;
                while (!state.scores && state.judge_attempts < options.judge_attempts) {
                    if (!prompt) prompt = eqbench3_rubric_prompt(data, transcript);
                    const auto start = std::chrono::steady_clock::now();
                    const Eqb3Reply reply = judge({{"user", *prompt}}, {kEqBench3JudgeTemperature, std::nullopt, kEqBench3JudgeMaxTokens}, 0);
                    const std::string text(python_strip(eqbench3_strip_reasoning(reply.text)));
                    ++judge_calls;
                    ++state.judge_attempts;
                    state.scores = eqbench3_parse_rubric(text);
                    json record = {{"scenario", scenario->id}, {"attempt", state.judge_attempts}, {"text", text}, {"parsed", state.scores.has_value()},
                                   {"prompt_tokens", reply.prompt_tokens}, {"completion_tokens", reply.completion_tokens},
                                   {"seconds", seconds_since(start)}};
                    judge_log.append(record);
                }
            }
        }
        if (progress) progress->update(static_cast<std::int64_t>(++done), {{"replies", static_cast<double>(generated)}, {"judged", static_cast<double>(judge_calls)}});
    }
    if (progress) progress->finish({{"replies", static_cast<double>(generated)}, {"judged", static_cast<double>(judge_calls)}});

    Eqb3RunResult result = summarise(data, scenarios, states, options.judge_attempts);
    result.name = options.name;
    result.replies_generated = generated;
    result.judge_calls = judge_calls;
    write_file_atomically(options.out + "/results.json", results_json(result).dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    return result;
}

Eqb3LoadedRun load_eqbench3_run(const Eqb3Data& data, const std::string& dir) {
    Eqb3LoadedRun run;
    run.dir = dir;
    const std::string config_path = dir + "/config.json";
    if (!std::filesystem::exists(config_path)) fail("{}: not an EQ-Bench 3 run directory (no config.json)", dir);
    run.config = read_json_file(config_path, kMaxConfigBytes);
    if (!run.config.is_object() || run.config.value("format", "") != kRunFormat) fail("{}: not a {} file", config_path, kRunFormat);
    for (const auto& [name, sha] : data.fingerprints) {
        const auto stored = run.config.find("data");
        if (stored == run.config.end() || !stored->is_object() || stored->value(name, "") != sha) {
            fail("{}: the run was made with a different {} than {} holds", config_path, name, data.dir);
        }
    }
    std::vector<std::string> ids;
    const auto scenarios = run.config.find("scenarios");
    if (scenarios == run.config.end() || !scenarios->is_array()) fail("{}: 'scenarios' missing or not a list", config_path);
    for (const auto& id : *scenarios) {
        if (!id.is_string()) fail("{}: 'scenarios' holds a non-string", config_path);
        ids.push_back(id.get<std::string>());
    }
    const auto chosen = chosen_scenarios(data, ids);
    std::map<std::string, ScenarioState> states;
    // Read without touching: Journal::read only truncates a torn last line, which is never data.
    Journal replies(dir + "/replies.jsonl");
    Journal judge_log(dir + "/judge.jsonl");
    replay_replies(replies.read(), dir + "/replies.jsonl", states);
    replay_judge(judge_log.read(), dir + "/judge.jsonl", states);
    const int attempts = run.config.value("judge_attempts", 3);
    run.result = summarise(data, chosen, states, attempts);
    run.result.name = run.config.value("name", dir);
    for (const Eqb3Scenario* scenario : chosen) {
        const auto it = states.find(scenario->id);
        if (it != states.end()) run.transcripts[scenario->id] = transcript_of(data, *scenario, it->second);
    }
    // The pairwise judge sees analysis tasks only once the rubric scored them (the harness's rule).
    for (const auto& task : run.result.tasks) {
        if (task.kind == Eqb3Kind::Analysis && task.status != "scored" && task.status != "unscored") run.transcripts.erase(task.scenario);
        if (task.status == "error" || task.status == "unfinished" || task.status == "too short") run.transcripts.erase(task.scenario);
    }
    return run;
}

Eqb3CompareResult eqbench3_compare(const Eqb3Data& data, const std::vector<std::string>& run_dirs, const Eqb3Chat& judge,
                                   const Eqb3CompareOptions& options) {
    if (run_dirs.size() < 2) fail("EQ-Bench 3 compare: give at least two run directories, got {}", run_dirs.size());
    if (options.out.empty()) fail("EQ-Bench 3 compare: no output directory given");
    std::vector<Eqb3LoadedRun> runs;
    std::set<std::string> names;
    for (const auto& dir : run_dirs) {
        runs.push_back(load_eqbench3_run(data, dir));
        if (!names.insert(runs.back().result.name).second) {
            fail("{}: the model name '{}' is used by another run too; Elo needs one name per model (--name)", dir, runs.back().result.name);
        }
    }
    std::filesystem::create_directories(options.out);
    const std::string journal_path = options.out + "/pairwise.jsonl";
    Journal journal(journal_path);
    // (test, other, scenario, order) -> answers so far
    struct Answers {
        int attempts = 0;
        std::optional<PyValue> judgement;
    };
    std::map<std::tuple<std::string, std::string, std::string, std::string>, Answers> answers;
    const auto records = journal.read();
    for (std::size_t i = 0; i < records.size(); ++i) {
        const std::string where = fmt::format("{} line {}", journal_path, i + 1);
        const auto& r = records[i];
        Answers& a = answers[{journal_string(r, "test", where), journal_string(r, "other", where), journal_string(r, "scenario", where),
                              journal_string(r, "order", where)}];
        ++a.attempts;
        if (!a.judgement) a.judgement = eqbench3_parse_pairwise(journal_string(r, "text", where));
    }

    Eqb3CompareResult result;
    std::vector<Eqb3Comparison> comparisons;
    struct Match {
        std::size_t i, j;
        const Eqb3Scenario* scenario;
    };
    std::vector<Match> matches;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        for (std::size_t j = i + 1; j < runs.size(); ++j) {
            std::vector<std::string> common;  // sorted as strings, as the harness sorts them
            for (const auto& [id, transcript] : runs[i].transcripts) {
                if (runs[j].transcripts.contains(id)) common.push_back(id);
            }
            for (const auto& id : common) matches.push_back({i, j, data.find(id)});
        }
    }
    std::optional<Progress> progress;
    start_progress(progress, options.progress, "pairwise", "match", matches.size());
    std::size_t done = 0;
    for (const Match& match : matches) {
        const std::string& test = runs[match.i].result.name;
        const std::string& other = runs[match.j].result.name;
        const Eqb3Transcript& test_transcript = runs[match.i].transcripts.at(match.scenario->id);
        const Eqb3Transcript& other_transcript = runs[match.j].transcripts.at(match.scenario->id);
        bool both = true;
        for (const bool forward : {true, false}) {
            const std::string order = forward ? "forward" : "reversed";
            Answers& a = answers[{test, other, match.scenario->id, order}];
            while (!a.judgement && a.attempts < options.judge_attempts) {
                const std::string prompt = forward ? eqbench3_pairwise_prompt(data, test_transcript, other_transcript)
                                                   : eqbench3_pairwise_prompt(data, other_transcript, test_transcript);
                const auto start = std::chrono::steady_clock::now();
                const Eqb3Reply reply = judge({{"user", prompt}}, {kEqBench3JudgeTemperature, std::nullopt, kEqBench3JudgeMaxTokens}, 0);
                const std::string text = eqbench3_strip_reasoning(reply.text);
                ++a.attempts;
                ++result.judge_calls;
                a.judgement = eqbench3_parse_pairwise(text);
                journal.append(json{{"test", test}, {"other", other}, {"scenario", match.scenario->id}, {"order", order},
                                    {"attempt", a.attempts}, {"text", text}, {"parsed", a.judgement.has_value()},
                                    {"seconds", seconds_since(start)}});
            }
            if (!a.judgement) {
                ++result.failed;
                both = false;
                continue;
            }
            comparisons.push_back(eqbench3_comparison(test, other, match.scenario->id, "1", forward, *a.judgement));
        }
        if (both) ++result.matches;
        if (progress) progress->update(static_cast<std::int64_t>(++done), {{"judged", static_cast<double>(result.judge_calls)}});
    }
    if (progress) progress->finish({{"judged", static_cast<double>(result.judge_calls)}});

    std::vector<std::string> models;
    for (const auto& run : runs) models.push_back(run.result.name);
    const auto elo = eqbench3_elo(models, comparisons);
    for (const auto& run : runs) {
        Eqb3CompareRow row;
        row.name = run.result.name;
        row.dir = run.dir;
        row.rubric_score = run.result.rubric_score;
        row.scored = run.result.scored;
        row.scenarios = run.result.scenarios;
        row.elo = elo.at(row.name);
        row.criterion_means = run.result.criterion_means;
        result.normalised = row.elo.elo_norm.has_value();
        result.rows.push_back(std::move(row));
    }
    result.markdown = eqbench3_compare_markdown(result);

    json rows = json::array();
    for (const auto& row : result.rows) {
        json means = json::object();
        for (const auto& [criterion, mean] : row.criterion_means) means[criterion] = mean;
        const auto optional = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
        rows.push_back({{"name", row.name}, {"dir", row.dir}, {"rubric_score", optional(row.rubric_score)}, {"scored", row.scored},
                        {"scenarios", row.scenarios}, {"elo", row.elo.elo}, {"sigma", row.elo.sigma}, {"ci_low", row.elo.ci_low},
                        {"ci_high", row.elo.ci_high}, {"elo_norm", optional(row.elo.elo_norm)}, {"criterion_means", means}});
    }
    const json summary = {{"runs", rows},
                          {"matches", result.matches},
                          {"failed_orders", result.failed},
                          {"judge", json::parse(options.judge_identity.dump())},
                          {"elo_scale", result.normalised ? "normalised: o3 = 1500, meta-llama/llama-3.2-1b-instruct = 200"
                                                          : "raw TrueSkill among these runs only (mu 1200); no anchor models"}};
    write_file_atomically(options.out + "/compare.json", summary.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    write_file_atomically(options.out + "/compare.md", result.markdown);
    write_file_atomically(options.out + "/criteria.svg", eqbench3_criteria_svg(result.rows));
    return result;
}

Eqb3CompareResult eqbench3_contest(const Eqb3Data& data, const std::vector<Eqb3Contestant>& contestants,
                                   const Eqb3Chat& judge, const Eqb3ContestOptions& options) {
    if (contestants.size() < 2) fail("EQ-Bench 3 contest: {} model(s); a comparison needs at least two", contestants.size());
    std::vector<std::string> dirs;
    for (const auto& contestant : contestants) {
        Eqb3RunOptions run_options;
        run_options.out = options.out + "/" + contestant.name;
        run_options.resume = std::filesystem::exists(run_options.out + "/config.json");
        run_options.scenarios = options.scenarios;
        run_options.name = contestant.name;
        run_options.identity = options.identity;
        run_options.identity["variant"] = contestant.name;
        run_options.max_reply_tokens = options.max_reply_tokens;
        run_options.progress = options.progress;
        run_eqbench3(data, contestant.chat, judge, run_options);
        dirs.push_back(run_options.out);
    }
    Eqb3CompareOptions compare;
    compare.out = options.out + "/compare";
    compare.judge_identity = options.identity.value("judge", nlohmann::json());
    compare.progress = options.progress;
    return eqbench3_compare(data, dirs, judge, compare);
}

Table eqbench3_report_table(const Eqb3CompareResult& result) {
    Table table;
    table.caption = result.normalised ? "Elo normalised with the official anchors (o3 = 1500, llama-3.2-1b = 200)"
                                      : "Elo: raw TrueSkill among these runs only (start 1200), not the leaderboard's scale";
    table.header = {"run", "rubric (0-100)", "scenarios scored", "Elo", "95% CI", "sigma"};
    for (const auto& row : result.rows) {
        table.rows.push_back({row.name, row.rubric_score ? fmt::format("{:.2f}", *row.rubric_score) : "—",
                              fmt::format("{} / {}", row.scored, row.scenarios), fmt::format("{:.1f}", row.elo.elo),
                              fmt::format("{:.1f} - {:.1f}", row.elo.ci_low, row.elo.ci_high), fmt::format("{:.1f}", row.elo.sigma)});
    }
    return table;
}

Chart eqbench3_report_chart(const Eqb3CompareResult& result) {
    return {"eqbench3_criteria.svg", "EQ-Bench 3: mean judge score per criterion", eqbench3_criteria_svg(result.rows)};
}

std::string eqbench3_compare_markdown(const Eqb3CompareResult& result) {
    std::string md = "| run | rubric (0-100) | scenarios scored | Elo | 95% CI | sigma |";
    md += result.normalised ? " Elo (normalised) |\n| --- | --- | --- | --- | --- | --- | --- |\n" : "\n| --- | --- | --- | --- | --- | --- |\n";
    for (const auto& row : result.rows) {
        std::string name = row.name;
        std::replace(name.begin(), name.end(), '|', '/');
        md += fmt::format("| {} | {} | {} / {} | {:.1f} | {:.1f} - {:.1f} | {:.1f} |", name,
                          row.rubric_score ? fmt::format("{:.2f}", *row.rubric_score) : std::string("—"), row.scored, row.scenarios, row.elo.elo,
                          row.elo.ci_low, row.elo.ci_high, row.elo.sigma);
        md += row.elo.elo_norm ? fmt::format(" {:.1f} |\n", *row.elo.elo_norm) : "\n";
    }
    md += fmt::format("\n{} matchups judged in both orders ({} orders without a parseable answer were left out). ", result.matches, result.failed);
    md += result.normalised ? "Elo normalised with the official anchors (o3 = 1500, meta-llama/llama-3.2-1b-instruct = 200).\n"
                            : "Elo is raw TrueSkill among these runs only (every run starts at 1200): it ranks them against each other and "
                              "is not on the EQ-Bench 3 leaderboard's scale (no anchor results were given).\n";
    return md;
}

std::string eqbench3_criteria_svg(const std::vector<Eqb3CompareRow>& rows) {
    std::vector<std::string> criteria;
    for (const auto& row : rows) {
        for (const auto& [criterion, mean] : row.criterion_means) {
            if (criterion != "chain_of_thought_reasoning" && std::find(criteria.begin(), criteria.end(), criterion) == criteria.end()) {
                criteria.push_back(criterion);
            }
        }
    }
    std::sort(criteria.begin(), criteria.end());
    std::vector<BarSeries> series;
    for (const auto& row : rows) {
        BarSeries s{row.name, {}};
        for (const auto& criterion : criteria) {
            const auto it = row.criterion_means.find(criterion);
            s.values.push_back(it == row.criterion_means.end() ? NAN : it->second);
        }
        series.push_back(std::move(s));
    }
    PlotOptions options;
    options.title = "EQ-Bench 3 rubric: mean score per criterion";
    options.x_label = "judge score (0-20)";
    options.width = 900;
    return bar_chart_svg(criteria, series, options);
}

}  // namespace kindred::eval
