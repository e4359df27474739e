#include "infer/controller.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "data/labels.h"
#include "infer/loaded_model.h"
#include "infer/styled_prompt.h"

namespace kindred::infer {
namespace {

constexpr std::int64_t kOneOffContext = 4096;
// The transcript the hidden steps read: the conversation's end, this many bytes at most, so their
// cost stays bounded however long the chat grows.
constexpr std::size_t kTranscriptBytes = 2000;
// A run of this many words shared with the hidden note counts as the note leaking into the reply.
constexpr std::size_t kLeakRun = 6;

constexpr const char* kReflectionInstruction =
    "You are the quiet inner voice of a caring friend. Read the conversation and write one short line about the user: "
    "what they feel and what they need from a friend right now. Do not write a reply to them.";
constexpr const char* kReflectionPrefill = "They feel";
constexpr const char* kSummaryInstruction =
    "Summarise in one short line how the user has felt so far in this conversation, and why.";
constexpr const char* kSummaryPrefill = "They have felt";
constexpr const char* kReplyGuide =
    "A good reply here is two or three short sentences that acknowledge what they shared, name how they feel, "
    "and end with one gentle question about them.";

// Seeds of the hidden steps, derived from the turn's seed (the draft uses the seed itself).
constexpr std::uint64_t kReflectionSeed = 0x5245464C45435431ull;
constexpr std::uint64_t kSummarySeed = 0x53554D4D41525931ull;

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string collapse_whitespace(std::string_view text) {
    std::string out;
    bool space = false;
    for (const char c : text) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = !out.empty();
        } else {
            if (space) out += ' ';
            space = false;
            out += c;
        }
    }
    return out;
}

// "User: ...\nFriend: ..." of the user and assistant turns, the last kTranscriptBytes of it,
// starting at a turn.
std::string transcript(std::span<const text::ChatMessage> messages) {
    std::string out;
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
        if (it->role != "user" && it->role != "assistant") continue;
        std::string line = fmt::format("{}: {}\n", it->role == "user" ? "User" : "Friend", collapse_whitespace(it->content));
        if (!out.empty() && out.size() + line.size() > kTranscriptBytes) break;
        if (line.size() > kTranscriptBytes) line = line.substr(line.size() - kTranscriptBytes);
        out.insert(0, line);
    }
    return out;
}

std::string joined(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (const std::string_view part : parts) {
        if (part.empty()) continue;
        if (!out.empty()) out += ' ';
        out += part;
    }
    return out;
}

// `text` up to the end of its last complete sentence, when it stops mid-sentence (a reply cut by
// its token bound) and has one; as it is otherwise.
std::string complete_sentences(const std::string& text) {
    const auto spans = data::sentence_spans(text);
    const auto ends_sentence = [&](std::size_t end) {
        const char last = text[end - 1];
        return last == '.' || last == '!' || last == '?' || last == '"';
    };
    if (spans.empty() || ends_sentence(spans.back().second)) return text;
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (ends_sentence(it->second)) return text.substr(0, it->second);
    }
    return text;
}

std::string percent(float p) { return fmt::format("{:.0f}%", 100.0f * p); }

std::vector<std::int32_t> directive_tokens(const text::Tokenizer& tokenizer, const std::vector<std::string>& words) {
    std::vector<std::int32_t> ids;
    for (std::size_t id = 0; id < tokenizer.vocab_size(); ++id) {
        const auto token = static_cast<std::int32_t>(id);
        if (tokenizer.is_special(token)) continue;
        std::string_view bytes = tokenizer.token_bytes(token);
        if (bytes.starts_with(' ')) bytes.remove_prefix(1);
        if (bytes.empty() || bytes.size() > 32) continue;
        std::string lower(bytes);
        for (char& c : lower)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (std::find(words.begin(), words.end(), lower) != words.end()) ids.push_back(token);
    }
    return ids;
}

std::pair<std::string, float> top_class(const model::Heads& heads, model::Head head, std::span<const float> pooled,
                                        const std::vector<std::string>& labels) {
    std::vector<float> logits(static_cast<std::size_t>(heads.outputs(head)));
    heads.forward(head, pooled.data(), 1, logits.data());
    const auto best = std::max_element(logits.begin(), logits.end());
    double total = 0.0;
    for (const float z : logits) total += std::exp(static_cast<double>(z - *best));
    return {labels.at(static_cast<std::size_t>(best - logits.begin())), static_cast<float>(1.0 / total)};
}

}  // namespace

std::string without_note_leaks(const std::string& reply, const std::string& note, bool& removed) {
    const std::vector<std::string> note_words = data::words_of(note);
    std::set<std::string> runs;
    for (std::size_t i = 0; i + kLeakRun <= note_words.size(); ++i) {
        std::string run;
        for (std::size_t k = 0; k < kLeakRun; ++k) run += note_words[i + k] + ' ';
        runs.insert(run);
    }
    if (runs.empty()) return reply;
    std::string kept;
    std::size_t copied = 0;
    for (const auto& [begin, end] : data::sentence_spans(reply)) {
        const std::vector<std::string> words = data::words_of(std::string_view(reply).substr(begin, end - begin));
        bool leaks = false;
        for (std::size_t i = 0; i + kLeakRun <= words.size() && !leaks; ++i) {
            std::string run;
            for (std::size_t k = 0; k < kLeakRun; ++k) run += words[i + k] + ' ';
            leaks = runs.contains(run);
        }
        if (leaks) {
            kept += reply.substr(copied, begin - copied);
            copied = end;
            removed = true;
        }
    }
    kept += reply.substr(copied);
    return collapse_whitespace(kept);
}

ControllerOptions::ControllerOptions() { generation.sampling = recommended_sampling(); }

struct Controller::Draft {
    std::string text;
    std::int64_t tokens = 0;
    FinishReason finish_reason = FinishReason::Stop;
};

nlohmann::ordered_json to_json(const TurnLog& log, bool hidden) {
    const auto check_json = [](const data::ReplyCheck& check) {
        return nlohmann::ordered_json{{"acknowledgment", check.acknowledgment}, {"named_feeling", check.named_feeling},
                                      {"question", check.question},             {"feelings", check.feelings},
                                      {"advice", check.advice},                 {"repetition_loop", check.repetition_loop}};
    };
    nlohmann::ordered_json triggers = nlohmann::ordered_json::array();
    for (const data::SafetyTrigger& trigger : log.triggers) {
        triggers.push_back({{"rule", trigger.rule},
                            {"severity", data::severity_name(trigger.severity)},
                            {"in_user", trigger.in_user},
                            {"in_reply", trigger.in_reply}});
        if (hidden) {
            triggers.back()["user_match"] = trigger.user_match;
            triggers.back()["reply_match"] = trigger.reply_match;
        }
    }
    nlohmann::ordered_json out = {{"turn", log.turn}};
    if (log.heads) {
        out["heads"] = {{"emotion", log.heads->emotion},
                        {"emotion_probability", log.heads->emotion_probability},
                        {"strategy", log.heads->strategy},
                        {"strategy_probability", log.heads->strategy_probability}};
    }
    if (hidden) {
        out["reflection"] = log.reflection;
        out["summary"] = log.summary;
        out["draft"] = log.draft;
    }
    out["reflected"] = !log.reflection.empty();
    out["summarised"] = !log.summary.empty();
    out["history_dropped"] = log.history_dropped;
    out["draft_check"] = check_json(log.draft_check);
    out["final_check"] = check_json(log.final_check);
    out["triggers"] = std::move(triggers);
    out["redecoded"] = log.redecoded;
    out["penalised_tokens"] = log.penalised_tokens;
    out["safety_outcome"] = log.safety_outcome;
    out["repairs"] = log.repairs;
    out["leak_removed"] = log.leak_removed;
    out["generated_tokens"] = log.generated_tokens;
    out["reply_tokens"] = log.reply_tokens;
    out["seconds"] = log.seconds;
    if (hidden) out["prompts"] = log.prompts;
    return out;
}

Controller::Controller(LoadedModel& model, ControllerOptions options, const data::SafetyRules* rules)
    : model_(model), options_(std::move(options)), rules_(rules != nullptr ? rules : &data::SafetyRules::builtin()) {
    if (options_.reflection_tokens < 1) fail("controller: the reflection's length bound must be >= 1 token, got {}", options_.reflection_tokens);
    if (options_.summary_tokens < 4) fail("controller: the summary's length bound must be >= 4 tokens, got {}", options_.summary_tokens);
    if (options_.max_repairs < 0) fail("controller: max repairs must be >= 0, got {}", options_.max_repairs);
    if (options_.history_budget < 1) fail("controller: the history budget must be >= 1 token, got {}", options_.history_budget);
    if (options_.generation.max_tokens < 1) fail("controller: max tokens must be >= 1, got {}", options_.generation.max_tokens);
    options_.generation.sampling.validate(model.decoder().config().vocab_size);
    if (options_.generation.stop_tokens.empty()) options_.generation.stop_tokens = model.stop_tokens();
    if (options_.generation.stop_strings.empty()) options_.generation.stop_strings = model.stop_strings();
    model.require_chat_template();
    const std::string& adapter = model.adapter_path();
    if (options_.heads && !adapter.empty() && std::filesystem::exists(adapter + "/heads.json")) {
        heads_ = model::read_heads_with_labels(adapter, model.decoder().config().hidden_size);
    }
    penalised_ = directive_tokens(model.tokenizer(), rules_->directive_words());
}

GenerationOptions Controller::redecode_options(const GenerationOptions& base) const {
    GenerationOptions options = base;
    for (const std::int32_t id : penalised_) options.sampling.logit_bias.emplace_back(id, -rules_->directive_penalty());
    return options;
}

Session Controller::new_session() const {
    return Session(model_.decoder(), model_.tokenizer(), std::min(kOneOffContext, model_.decoder().config().context_length));
}

GenerationResult Controller::plain_reply(Session& session, std::span<const text::ChatMessage> messages, std::uint64_t seed) const {
    GenerationOptions generation = options_.generation;
    generation.sampling.seed = seed;
    return session.generate(encode_styled_chat(model_, messages, options_.style), generation);
}

std::optional<HeadGuess> Controller::guess(Session& session, std::span<const std::int32_t> prompt) const {
    if (!heads_) return std::nullopt;
    const model::Heads& heads = heads_->heads;
    if (!heads.enabled(model::Head::Emotion) && !heads.enabled(model::Head::Strategy)) return std::nullopt;
    const std::span<const float> pooled = session.pooled_state(prompt);
    HeadGuess guess;
    if (heads.enabled(model::Head::Emotion))
        std::tie(guess.emotion, guess.emotion_probability) = top_class(heads, model::Head::Emotion, pooled, heads_->emotion_labels);
    if (heads.enabled(model::Head::Strategy))
        std::tie(guess.strategy, guess.strategy_probability) = top_class(heads, model::Head::Strategy, pooled, heads_->strategy_labels);
    return guess;
}

Controller::Draft Controller::decode(const DecodeFn& decode_fn, std::span<const text::ChatMessage> messages, const std::string& note,
                                     const GenerationOptions& generation, TurnLog& log) {
    const text::RenderedChat prompt = styled_prompt(model_, messages, options_.style, note);
    log.prompts.push_back(prompt.text);
    const GenerationResult result = decode_fn(model_.encode_rendered(prompt), generation);
    log.generated_tokens += static_cast<std::int64_t>(result.tokens.size());
    return {result.text, static_cast<std::int64_t>(result.tokens.size()), result.finish_reason};
}

std::string Controller::hidden_line(const DecodeFn& decode_fn, const std::string& instruction, const std::string& conversation,
                                    const std::string& prefill, std::int64_t max_tokens, std::uint64_t seed, TurnLog& log) {
    const std::vector<text::ChatMessage> messages = {{"system", instruction, {}}, {"user", "Conversation:\n" + conversation, {}}};
    const text::RenderedChat prompt = styled_prompt(model_, messages, std::nullopt, {}, prefill);
    log.prompts.push_back(prompt.text);
    GenerationOptions generation = options_.generation;
    generation.sampling.seed = seed;
    generation.sampling.logit_bias.clear();
    generation.max_tokens = max_tokens;
    generation.stop_strings.push_back("\n");
    const GenerationResult result = decode_fn(model_.encode_rendered(prompt), generation);
    log.generated_tokens += static_cast<std::int64_t>(result.tokens.size());
    return collapse_whitespace(prefill + result.text);
}

ControlledReply Controller::reply(Session& session, std::span<const text::ChatMessage> messages, std::uint64_t seed) {
    return run(
        [&session](std::span<const std::int32_t> prompt, const GenerationOptions& options) { return session.generate(prompt, options); },
        &session, messages, seed);
}

ControlledReply Controller::reply(const DecodeFn& decode_fn, std::span<const text::ChatMessage> messages, std::uint64_t seed) {
    return run(decode_fn, nullptr, messages, seed);
}

ControlledReply Controller::run(const DecodeFn& decode_fn, Session* heads_session, std::span<const text::ChatMessage> messages,
                                std::uint64_t seed) {
    if (messages.empty() || messages.back().role != "user") fail("controller: the conversation must end with a user message");
    const auto started = std::chrono::steady_clock::now();
    ControlledReply out;
    TurnLog& log = out.log;
    log.turn = static_cast<int>(std::count_if(messages.begin(), messages.end(), [](const auto& m) { return m.role == "user"; }));
    const std::string& user_turn = messages.back().content;
    const bool later_turn = std::any_of(messages.begin(), messages.end(), [](const auto& m) { return m.role == "assistant"; });

    // 0. Memory: the summary of what came before this turn, then the oldest exchanges out while
    // the prompt is over budget.
    std::vector<text::ChatMessage> visible(messages.begin(), messages.end());
    if (options_.memory && later_turn) {
        const auto prefill_tokens = static_cast<std::int64_t>(model_.tokenizer().encode(kSummaryPrefill, false).size());
        log.summary = hidden_line(decode_fn, kSummaryInstruction, transcript(messages.first(messages.size() - 1)), kSummaryPrefill,
                                  std::max<std::int64_t>(1, options_.summary_tokens - prefill_tokens), seed ^ kSummarySeed, log);
        // Re-encoding may merge differently at the seam; the bound holds for the text as it is used.
        while (static_cast<std::int64_t>(model_.tokenizer().encode(log.summary, /*parse_special=*/false).size()) > options_.summary_tokens) {
            const auto space = log.summary.rfind(' ');
            log.summary = space == std::string::npos ? std::string() : log.summary.substr(0, space);
        }
        const std::size_t first = !visible.empty() && visible.front().role == "system" ? 1 : 0;
        while (visible.size() > first + 1 &&
               static_cast<std::int64_t>(encode_styled_chat(model_, visible, options_.style).size()) > options_.history_budget) {
            visible.erase(visible.begin() + static_cast<std::ptrdiff_t>(first));
            ++log.history_dropped;
        }
    }

    // 1. Reflection, with the heads' guess at the pooled position of the plain prompt as its hint.
    if (options_.heads && heads_ && heads_session != nullptr) log.heads = guess(*heads_session, encode_styled_chat(model_, visible, options_.style));
    if (options_.reflection) {
        std::string instruction = kReflectionInstruction;
        if (log.heads && !log.heads->emotion.empty()) {
            instruction += fmt::format(" A feelings classifier reads the user's last message as {} ({}).", log.heads->emotion,
                                       percent(log.heads->emotion_probability));
        }
        if (log.heads && !log.heads->strategy.empty()) {
            instruction += fmt::format(" A helpful way to respond may be: {}.", log.heads->strategy);
        }
        log.reflection = hidden_line(decode_fn, instruction, transcript(visible), kReflectionPrefill, options_.reflection_tokens,
                                     seed ^ kReflectionSeed, log);
    }
    std::string note;
    if (!log.reflection.empty() || !log.summary.empty()) {
        note = "(Private note for you alone; never repeat, quote or mention it. " +
               joined({log.reflection, log.summary.empty() ? "" : "Earlier in this conversation: " + log.summary}) + ") " + kReplyGuide;
    }

    // 2-3. Draft and safety. A rule triggered by the user's turn alone switches the safety decoding
    // (the rules' guidance in the note, the directive penalty) on before anything is decoded, so no
    // unpenalised draft is made; one triggered only by the draft has the draft decoded again so.
    GenerationOptions generation = options_.generation;
    generation.sampling.seed = seed;
    std::string safety_note;
    const std::string_view guide = note.empty() ? std::string_view(kReplyGuide) : std::string_view(note);
    const auto go_safe = [&](std::vector<data::SafetyTrigger> triggers) {
        log.triggers = std::move(triggers);
        safety_note = "Safety:";
        for (const data::SafetyTrigger& trigger : log.triggers) safety_note += ' ' + rules_->rule(trigger.rule).guidance;
        generation = redecode_options(generation);
        generation.sampling.seed = seed + 1;
        log.redecoded = true;
        log.penalised_tokens = penalised_.size();
        log.safety_outcome = "redecoded";
    };
    if (options_.safety) {
        if (auto triggers = rules_->detect(user_turn, ""); !triggers.empty()) go_safe(std::move(triggers));
    }
    Draft best = decode(decode_fn, visible, safety_note.empty() ? note : joined({guide, safety_note}), generation, log);
    log.draft = best.text;
    log.draft_check = data::check_reply(best.text);
    if (options_.safety && log.triggers.empty()) {
        if (auto triggers = rules_->detect(user_turn, best.text); !triggers.empty()) {
            go_safe(std::move(triggers));
            best = decode(decode_fn, visible, joined({guide, safety_note}), generation, log);
        }
    }

    // 4. Checker: bounded repairs, each told what the best reply so far misses.
    data::ReplyCheck best_check = data::check_reply(best.text);
    std::string hidden_text = joined({note, safety_note});
    for (int attempt = 1; attempt <= options_.max_repairs && !best_check.complete(); ++attempt) {
        std::vector<std::string> asks;
        if (!best_check.acknowledgment) asks.emplace_back("start by acknowledging what they told you");
        if (!best_check.named_feeling) {
            asks.push_back(log.heads && !log.heads->emotion.empty()
                               ? fmt::format("name their feeling in plain words (perhaps {})", log.heads->emotion)
                               : std::string("name their feeling in plain words"));
        }
        if (!best_check.question) asks.emplace_back("end with one gentle question about them");
        const std::string repair_note = fmt::format("Your reply must {}.", fmt::join(asks, ", "));
        const std::string full_note = joined({guide, safety_note, repair_note});
        hidden_text = joined({hidden_text, repair_note});
        generation.sampling.seed = seed + 1 + static_cast<std::uint64_t>(attempt);
        const Draft candidate = decode(decode_fn, visible, full_note, generation, log);
        ++log.repairs;
        const data::ReplyCheck check = data::check_reply(candidate.text);
        // A repair may not bring in what the rules forbid.
        if (options_.safety && !rules_->reply_violations(candidate.text).empty()) continue;
        if (check.score() > best_check.score()) {
            best = candidate;
            best_check = check;
        }
    }

    // 5. Leak guard, then the rules' last word on a triggered turn.
    std::string text = without_note_leaks(best.text, joined({hidden_text, log.summary}), log.leak_removed);
    if (text.empty() && log.leak_removed) {
        // Every sentence repeated the note: one decode without it (the safety penalty kept).
        best = decode(decode_fn, visible, "", generation, log);
        text = best.text;
    }
    if (options_.safety) {
        // Whatever path the text took (a leak-guard decode has no note), nothing a rule forbids goes out.
        const auto violations = rules_->reply_violations(text);
        if (!violations.empty()) {
            // The fallback written for the user's situation (a crisis rule first), not for what the
            // draft did wrong: an abuse disclosure answered with "I can't help with hurting anyone"
            // (harm to others') would blame the person. The broken rule's when the turn triggered none.
            const data::SafetyTrigger* situation = nullptr;
            for (const data::SafetyTrigger& trigger : log.triggers)
                if (trigger.in_user && (situation == nullptr || (trigger.severity == data::Severity::Crisis &&
                                                                 situation->severity != data::Severity::Crisis)))
                    situation = &trigger;
            text = rules_->rule(situation != nullptr ? situation->rule : violations.front().rule).fallback;
            log.safety_outcome = "fallback";
        }
        for (const data::SafetyTrigger& trigger : log.triggers) {
            if (trigger.severity != data::Severity::Crisis) continue;
            if (!rules_->refers_to_help(text)) {
                text = complete_sentences(text) + "\n\n" + rules_->rule(trigger.rule).message;
                log.safety_outcome += "+help";
            }
            break;
        }
    }
    log.final_check = data::check_reply(text);
    log.reply_tokens = best.tokens;
    // A fallback or help message is a whole reply, however the decode it replaced ended.
    out.finish_reason = log.safety_outcome.starts_with("fallback") || log.safety_outcome.ends_with("+help") ? FinishReason::Stop
                                                                                                            : best.finish_reason;
    log.seconds = seconds_since(started);
    out.text = std::move(text);
    return out;
}

ControlledReply controlled_reply(LoadedModel& model, std::span<const text::ChatMessage> messages, const ControllerOptions& options,
                                 std::uint64_t seed, const data::SafetyRules* rules) {
    Controller controller(model, options, rules);
    Session session = controller.new_session();
    return controller.reply(session, messages, seed);
}

}  // namespace kindred::infer
