// train/pairs_build.cpp — the preference-pair sources of `kindred pairs build` (see pairs_build.h).
#include "train/pairs_build.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/metrics_log.h"
#include "core/progress.h"
#include "data/split.h"
#include "infer/generator.h"
#include "infer/loaded_model.h"
#include "train/chat_dataset.h"
#include "train/preference_pairs.h"
#include "train/recipe.h"
#include "train/safety_replies.h"

namespace kindred::train {
namespace {

namespace fs = std::filesystem;

// One prompt conversation with its gold reply (empty for a prompt-only line) and head labels.
struct PromptItem {
    std::vector<text::ChatMessage> prompt;
    std::string gold;
    std::vector<std::int32_t> emotions;
    std::int32_t strategy = -1;
    bool has_va = false;
    float valence = 0.0f, arousal = 0.0f;
    std::size_t line = 0;
};

// Conversations with a target assistant turn: the prompt before the first one, that turn as gold.
// With `prompt_only`, lines ending in a user turn are taken whole as prompts without gold.
std::vector<PromptItem> read_prompts(const std::string& path, std::size_t max_prompts, bool prompt_only) {
    std::vector<PromptItem> items;
    ChatDatasetStats stats;
    for_each_chat_example(path, stats, [&](ChatExample&& example) {
        if (max_prompts > 0 && items.size() >= max_prompts) return;
        PromptItem item;
        item.line = example.line;
        item.emotions = example.emotions;
        item.has_va = example.has_va;
        item.valence = example.valence;
        item.arousal = example.arousal;
        if (prompt_only) {
            if (example.messages.back().role != "user")
                fail("{} line {}: a safety prompt must end with a user message", path, example.line);
            item.prompt = std::move(example.messages);
            items.push_back(std::move(item));
            return;
        }
        for (std::size_t i = 0; i < example.messages.size(); ++i) {
            if (!example.target[i]) continue;
            item.prompt.assign(example.messages.begin(), example.messages.begin() + static_cast<std::ptrdiff_t>(i));
            item.gold = example.messages[i].content.substr(example.prefix_bytes[i]);
            item.strategy = example.strategy[i];
            break;
        }
        if (!item.prompt.empty() && item.gold.find_first_not_of(" \t\r\n") != std::string::npos)
            items.push_back(std::move(item));
    });
    return items;
}

const std::string& last_user_text(const std::vector<text::ChatMessage>& prompt) {
    for (auto it = prompt.rbegin(); it != prompt.rend(); ++it)
        if (it->role == "user") return it->content;
    static const std::string none;
    return none;
}

// Deterministic per-prompt seeds (splitmix64 of the build seed, the prompt and the draw).
std::uint64_t draw_seed(std::uint64_t seed, std::size_t prompt, std::uint64_t draw) {
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(prompt) * 4 + draw + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct Sample {
    std::string text;
    bool truncated = false;
    std::size_t tokens = 0;
};

Sample sample_reply(infer::LoadedModel& model, const std::vector<text::ChatMessage>& prompt,
                    infer::SamplingParams params, std::int64_t max_tokens, std::uint64_t seed) {
    const std::vector<std::int32_t> ids = model.encode_chat(prompt);
    const std::int64_t context = model.decoder().config().context_length;
    const auto prompt_size = static_cast<std::int64_t>(ids.size());
    if (prompt_size >= context) fail("pairs build: a prompt has {} tokens but the model's context holds {}", prompt_size, context);
    infer::Session session(model.decoder(), model.tokenizer(), std::min(context, prompt_size + max_tokens));
    infer::GenerationOptions options;
    params.seed = seed;
    options.sampling = params;
    options.max_tokens = max_tokens;
    options.stop_tokens = model.stop_tokens();
    options.stop_strings = model.stop_strings();
    const auto result = session.generate(ids, options);
    Sample sample;
    sample.text = result.text;
    sample.truncated = result.finish_reason != infer::FinishReason::Stop;
    sample.tokens = result.tokens.size();
    return sample;
}

bool blank(const std::string& text) { return text.find_first_not_of(" \t\r\n") == std::string::npos; }

PreferencePair pair_for(const PromptItem& item, std::string chosen, std::string rejected, const char* source,
                        nlohmann::json provenance) {
    PreferencePair pair;
    pair.prompt = item.prompt;
    pair.chosen = std::move(chosen);
    pair.rejected = std::move(rejected);
    pair.source = source;
    pair.provenance = std::move(provenance);
    pair.emotions = item.emotions;
    pair.strategy = item.strategy;
    pair.has_va = item.has_va;
    pair.valence = item.valence;
    pair.arousal = item.arousal;
    return pair;
}

std::string conversation_text(const std::vector<text::ChatMessage>& prompt) {
    std::string text;
    for (const auto& message : prompt) {
        if (message.role == "system" || message.role == "developer") continue;
        text += (message.role == "user" ? "User: " : "Assistant: ") + message.content + "\n";
    }
    return text;
}

std::string fill(std::string text, const std::string& placeholder, const std::string& value) {
    for (std::size_t at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at + value.size()))
        text.replace(at, placeholder.size(), value);
    return text;
}

std::string hex(std::uint64_t value) { return fmt::format("{:016x}", value); }

// The judge with its cache: verdicts by key, appended to the cache file as they arrive.
class CachedJudge {
public:
    CachedJudge(const JudgeSettings& settings, const JudgeCall& call) : settings_(settings), call_(call) {
        template_ = read_file_text(settings.prompt, 1u << 20);
        for (const char* placeholder : {"{conversation}", "{reply_a}", "{reply_b}"})
            if (template_.find(placeholder) == std::string::npos)
                fail("{}: the judge prompt has no {} placeholder", settings.prompt, placeholder);
        if (fs::exists(settings.cache)) {
            for (const auto& record : read_metrics_log(settings.cache).records) {
                if (!record.contains("key") || !record["key"].is_string() || !record.contains("verdict") ||
                    !record["verdict"].is_string())
                    fail("{}: a judgement record lacks 'key' or 'verdict'", settings.cache);
                verdicts_[record["key"].get<std::string>()] = record["verdict"].get<std::string>();
            }
        }
        if (const auto parent = fs::path(settings.cache).parent_path(); !parent.empty()) fs::create_directories(parent);
        log_.emplace(settings.cache);
    }

    // 'A', 'B' or 0 for the replies in this order.
    char verdict(const std::vector<text::ChatMessage>& prompt, const std::string& a, const std::string& b, bool& cached) {
        const std::string user = fill(fill(fill(template_, "{conversation}", conversation_text(prompt)), "{reply_a}", a),
                                      "{reply_b}", b);
        const std::string key = hex(data::fnv1a64(settings_.model + '\0' + template_ + '\0' + user));
        if (const auto it = verdicts_.find(key); it != verdicts_.end()) {
            cached = true;
            return it->second.empty() || it->second == "?" ? 0 : it->second.front();
        }
        cached = false;
        const std::string answer = call_("", user);
        const char v = parse_verdict(answer);
        const std::string verdict = v == 0 ? "?" : std::string(1, v);
        verdicts_[key] = verdict;
        log_->write({{"key", key}, {"judge_model", settings_.model}, {"verdict", verdict}, {"answer", answer}});
        return v;
    }

private:
    const JudgeSettings& settings_;
    const JudgeCall& call_;
    std::string template_;
    std::unordered_map<std::string, std::string> verdicts_;
    std::optional<MetricsLog> log_;
};

struct FileResult {
    std::vector<std::string> lines;
    std::size_t prompts = 0;
};

}  // namespace

char parse_verdict(const std::string& answer) {
    for (std::size_t i = answer.size(); i > 0; --i) {
        const char c = answer[i - 1];
        if (c != 'A' && c != 'B') continue;
        const bool left_ok = i == 1 || !std::isalnum(static_cast<unsigned char>(answer[i - 2]));
        const bool right_ok = i == answer.size() || !std::isalnum(static_cast<unsigned char>(answer[i]));
        if (left_ok && right_ok) return c;
    }
    return 0;
}

PairsBuildSettings read_pairs_settings(Config& config) {
    PairsBuildSettings s;
    const auto count = [&](std::string_view key) { return static_cast<std::size_t>(read_at_least(config, key, 0, 0)); };
    s.out = config.get<std::string>("pairs.out", s.out);
    if (s.out.empty()) config.fail_at("pairs.out", "must name the pairs file to write");
    s.prompts = config.get<std::string>("pairs.prompts", "");
    s.max_prompts = count("pairs.max_prompts");
    s.dev_out = config.get<std::string>("pairs.dev_out", "");
    s.dev_prompts = config.get<std::string>("pairs.dev_prompts", "");
    if (s.dev_out.empty() != s.dev_prompts.empty())
        config.fail_at(s.dev_out.empty() ? "pairs.dev_prompts" : "pairs.dev_out",
                       "pairs.dev_out and pairs.dev_prompts go together: give both or neither");
    s.dev_max_prompts = count("pairs.dev_max_prompts");
    s.seed = static_cast<std::uint64_t>(read_at_least(config, "pairs.seed", 0, 0));
    s.sampling.temperature = static_cast<float>(read_in_range(config, "pairs.sampling.temperature", 0.8, 0.0, 10.0));
    s.sampling.top_k = static_cast<std::int32_t>(read_at_least(config, "pairs.sampling.top_k", 40, 0));
    s.sampling.top_p = static_cast<float>(read_in_range(config, "pairs.sampling.top_p", 0.95, 1e-6, 1.0));
    s.sampling.min_p = static_cast<float>(read_in_range(config, "pairs.sampling.min_p", 0.05, 0.0, 1.0));
    s.sampling.repeat_penalty = static_cast<float>(read_in_range(config, "pairs.sampling.repeat_penalty", 1.1, 1e-3, 100.0));
    s.max_tokens = read_at_least(config, "pairs.sampling.max_tokens", 96);
    s.keep_truncated = config.get<bool>("pairs.sampling.keep_truncated", false);
    s.gold_vs_model = config.get<bool>("pairs.gold_vs_model.enabled", true);
    const auto sampler = config.get<std::string>("pairs.gold_vs_model.sampler", "reference");
    if (sampler != "reference" && sampler != "base") config.fail_at("pairs.gold_vs_model.sampler", "must be 'reference' or 'base'");
    s.sample_from_base = sampler == "base";
    auto& j = s.judge;
    j.enabled = config.get<bool>("pairs.judge.enabled", false);
    j.url = config.get<std::string>("pairs.judge.url", "");
    j.model = config.get<std::string>("pairs.judge.model", "");
    j.prompt = config.get<std::string>("pairs.judge.prompt", "");
    j.api_key_env = config.get<std::string>("pairs.judge.api_key_env", j.api_key_env);
    j.cache = config.get<std::string>("pairs.judge.cache", s.out + ".judgements.jsonl");
    j.both_orders = config.get<bool>("pairs.judge.both_orders", true);
    j.timeout_s = read_in_range(config, "pairs.judge.timeout_s", 60.0, 1.0, 3600.0);
    j.max_retries = read_at_least(config, "pairs.judge.max_retries", 4, 0);
    if (j.enabled) {
        for (const char* key : {"pairs.judge.url", "pairs.judge.model", "pairs.judge.prompt"})
            if (config.get<std::string>(key, "").empty()) config.fail_at(key, "is needed when pairs.judge.enabled is true");
    }
    s.safety = config.get<bool>("pairs.safety.enabled", true);
    s.safety_prompts = config.get<std::string>("pairs.safety.prompts", "");
    return s;
}

void check_pairs_inputs(const PairsBuildSettings& settings) {
    if (!settings.gold_vs_model && !settings.judge.enabled && !settings.safety)
        fail("pairs build: every source is switched off (pairs.gold_vs_model, pairs.judge, pairs.safety)");
    if (settings.prompts.empty()) fail("pairs.prompts: no prompts file given");
    for (const auto& [key, path] : {std::pair{"pairs.prompts", settings.prompts}, std::pair{"pairs.dev_prompts", settings.dev_prompts},
                                    std::pair{"pairs.safety.prompts", settings.safety_prompts},
                                    std::pair{"pairs.judge.prompt", settings.judge.enabled ? settings.judge.prompt : std::string()}})
        if (!path.empty() && !fs::is_regular_file(path)) fail("{}: file '{}' not found", key, path);
}

PairsBuildReport build_pairs(const PairsBuildSettings& settings, infer::LoadedModel& model, const JudgeCall& judge,
                             const std::function<void(const std::string&)>& log) {
    const auto started = std::chrono::steady_clock::now();
    const auto say = [&](const std::string& line) {
        if (log) log(line);
    };
    check_pairs_inputs(settings);
    if (settings.judge.enabled && !judge) fail("pairs build: the judge source is on but no judge was given");
    if ((settings.gold_vs_model && !settings.sample_from_base) || settings.judge.enabled) {
        if (model.decoder().adapter() == nullptr)
            fail("pairs build: sampling from the reference needs its adapter (reference.adapter)");
    }
    settings.sampling.validate(model.decoder().config().vocab_size);
    std::optional<CachedJudge> cached_judge;
    if (settings.judge.enabled) cached_judge.emplace(settings.judge, judge);

    PairsBuildReport report;
    const auto build_file = [&](const std::string& path, std::size_t max_prompts, bool with_extra_safety) {
        std::vector<PromptItem> items = read_prompts(path, max_prompts, false);
        FileResult result;
        result.prompts = items.size();
        const std::size_t gold_items = items.size();
        if (with_extra_safety && settings.safety && !settings.safety_prompts.empty()) {
            auto extra = read_prompts(settings.safety_prompts, 0, true);
            items.insert(items.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
        }
        ProgressOptions progress_options;
        progress_options.label = "pairs";
        progress_options.unit = "tok";
        Progress progress(static_cast<std::int64_t>(items.size()), progress_options);
        std::size_t safety_made = 0;
        for (std::size_t i = 0; i < items.size(); ++i) {
            const PromptItem& item = items[i];
            const bool has_gold = i < gold_items;
            if (settings.gold_vs_model && has_gold) {
                const std::uint64_t seed = draw_seed(settings.seed, i, 0);
                std::optional<model::Decoder::AdapterDetached> base;
                if (settings.sample_from_base) base.emplace(model.decoder());
                const Sample sample = sample_reply(model, item.prompt, settings.sampling, settings.max_tokens, seed);
                base.reset();
                report.sampled_tokens += sample.tokens;
                auto& counts = report.gold_vs_model;
                if (sample.truncated && !settings.keep_truncated) ++counts.truncated;
                else if (blank(sample.text)) ++counts.empty;
                else if (sample.text == item.gold) ++counts.identical;
                else {
                    ++counts.made;
                    result.lines.push_back(pair_json_line(pair_for(
                        item, item.gold, sample.text, "gold_vs_model",
                        {{"chosen", "gold"},
                         {"rejected", settings.sample_from_base ? "base sample" : "reference sample"},
                         {"seed", seed},
                         {"line", item.line}})));
                }
            }
            if (settings.judge.enabled && has_gold) {
                Sample samples[2];
                std::uint64_t seeds[2];
                for (int k = 0; k < 2; ++k) {
                    seeds[k] = draw_seed(settings.seed, i, static_cast<std::uint64_t>(1 + k));
                    samples[k] = sample_reply(model, item.prompt, settings.sampling, settings.max_tokens, seeds[k]);
                    report.sampled_tokens += samples[k].tokens;
                }
                auto& counts = report.judge;
                if ((samples[0].truncated || samples[1].truncated) && !settings.keep_truncated) ++counts.truncated;
                else if (blank(samples[0].text) || blank(samples[1].text)) ++counts.empty;
                else if (samples[0].text == samples[1].text) ++counts.identical;
                else {
                    bool cached_first = false, cached_second = false;
                    const char first = cached_judge->verdict(item.prompt, samples[0].text, samples[1].text, cached_first);
                    char second = first == 'A' ? 'B' : first == 'B' ? 'A' : 0;  // as if agreeing
                    if (settings.judge.both_orders && first != 0)
                        second = cached_judge->verdict(item.prompt, samples[1].text, samples[0].text, cached_second);
                    counts.cached += (cached_first ? 1 : 0) + (cached_second ? 1 : 0);
                    // Both orders must pick the same reply: A then B means sample 0, B then A sample 1.
                    const int winner = first == 'A' && second == 'B' ? 0 : first == 'B' && second == 'A' ? 1 : -1;
                    if (winner < 0) {
                        ++counts.tied;
                    } else {
                        ++counts.made;
                        result.lines.push_back(pair_json_line(pair_for(
                            item, samples[winner].text, samples[1 - winner].text, "judge",
                            {{"judge_model", settings.judge.model},
                             {"verdicts", settings.judge.both_orders ? std::string{first, second} : std::string{first}},
                             {"seeds", {seeds[winner], seeds[1 - winner]}},
                             {"line", item.line}})));
                    }
                }
            }
            if (settings.safety) {
                const data::SafetyRules& rules = data::SafetyRules::builtin();
                const data::SafetyRule* rule = triggered_rule(rules, last_user_text(item.prompt));
                std::optional<std::string> rejected;
                ViolationKind kind = ViolationKind::Directive;
                for (std::size_t k = 0; rule != nullptr && k < kViolationKindCount && !rejected; ++k) {
                    kind = static_cast<ViolationKind>((safety_made + k) % kViolationKindCount);
                    rejected = violating_reply(rule->id, kind, safety_made);
                }
                if (rejected) {
                    const auto gold_violation = has_gold ? violation(rules, item.gold) : std::nullopt;
                    const bool gold_ok = has_gold && !gold_violation;
                    ++report.safety.made;
                    ++safety_made;
                    nlohmann::json provenance = {{"rule", rule->id},
                                                 {"chosen", gold_ok ? "gold" : "rule fallback"},
                                                 {"rejected", std::string(violation_kind_name(kind)) + " template"},
                                                 {"line", item.line}};
                    if (gold_violation) provenance["gold_violation"] = gold_violation->rule;
                    result.lines.push_back(pair_json_line(
                        pair_for(item, gold_ok ? item.gold : rule->fallback, *rejected, "safety", std::move(provenance))));
                }
            }
            progress.update(static_cast<std::int64_t>(i + 1), {{"pairs", static_cast<double>(result.lines.size())}},
                            static_cast<double>(report.sampled_tokens));
        }
        progress.finish();
        return result;
    };

    const auto write = [](const std::string& path, const std::vector<std::string>& lines) {
        if (const auto parent = fs::path(path).parent_path(); !parent.empty()) fs::create_directories(parent);
        std::string text;
        for (const auto& line : lines) text += line + "\n";
        write_file_atomically(path, text);
    };
    struct Output {
        const std::string& prompts;
        std::size_t max_prompts;
        const std::string& out;
        bool with_extra_safety;
        std::size_t& prompt_count;
        std::size_t& pair_count;
    };
    const Output outputs[] = {
        {settings.prompts, settings.max_prompts, settings.out, true, report.prompts, report.pairs},
        {settings.dev_prompts, settings.dev_max_prompts, settings.dev_out, false, report.dev_prompts, report.dev_pairs}};
    for (const Output& output : outputs) {
        if (output.out.empty()) continue;
        say(fmt::format("pairs from {} into {}", output.prompts, output.out));
        const FileResult result = build_file(output.prompts, output.max_prompts, output.with_extra_safety);
        output.prompt_count = result.prompts;
        output.pair_count = result.lines.size();
        if (result.lines.empty()) fail("pairs build: no pair was made from {} (see the counts above)", output.prompts);
        write(output.out, result.lines);
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
}

}  // namespace kindred::train
