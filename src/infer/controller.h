// infer/controller.h — the two-step decoding controller (docs/controller.md): one reply to a
// conversation, produced as
//   0. memory (turn 2 on): a feeling summary of the conversation so far, at most 20 tokens; it
//      supplements the raw history, and replaces its oldest exchanges when the prompt grows past
//      ControllerOptions::history_budget tokens;
//   1. reflection: one hidden line on what the user feels and needs, written by the model from a
//      fixed prompt (its hint: the heads' predicted emotion and strategy at the pooled position,
//      when the adapter has heads);
//   2. draft: the reply, conditioned on a hidden note (reflection, summary, what a good reply does)
//      added to the system message;
//   3. safety: the rules' detector (data/safety_rules.h) over the user's turn (before the draft: a
//      trigger there means the draft itself is decoded under the safety settings) and over the
//      draft (a trigger re-decodes it): the rules' guidance in the note and a logit penalty on every
//      directive/advice token (penalised_tokens()); a re-decoded reply that still breaks a rule is
//      replaced by that rule's fallback, and a crisis reply that does not point to help gets the
//      rule's message appended;
//   4. checker (data/reply_checker.h): a reply missing acknowledgment, a named feeling or a gentle
//      question is re-decoded with the missing parts spelled out in the note, at most max_repairs
//      times; the best candidate (most properties, earliest on a tie) is kept;
//   5. leak guard: sentences of the reply that repeat six or more words of the hidden note in a
//      row are dropped.
//
// What the user may see is ControlledReply::text and nothing else. The reflection, the summary, the
// draft and the prompts live only in the TurnLog, whose to_json(log, false) (the form for
// responses and user-facing logs) leaves them out; the caller's conversation history gets the
// reply text only, so no later turn's context holds a reflection.
//
// For the server (serve/controlled.h): one Controller per request (its options and style), every
// decode run as an engine job through reply(DecodeFn, ...). The function is stateless across calls:
// the memory summary is recomputed from the messages, so a client that re-sends its conversation
// gets the same behaviour as `kindred chat --controller`. Every prompt is tokenized with the chat
// template's markup ranges (LoadedModel::encode_rendered), so message text that spells a control
// token stays text.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/reply_checker.h"
#include "data/safety_rules.h"
#include "data/style.h"
#include "infer/generator.h"
#include "model/heads.h"
#include "text/chat_template.h"

namespace kindred::infer {

class LoadedModel;

// Tokens the controller's hidden note and instructions may add to a conversation's prompt (note,
// reflection, summary, two rules' guidance, a repair request): what a caller trimming its history
// to fit a context should keep free besides the reply.
inline constexpr std::int64_t kControllerPromptOverhead = 384;

struct ControllerOptions {
    // Step 1. Off: no reflection and, on turn 1, no hidden note at all, so a reply that triggers no
    // rule and needs no repair is exactly the plain decode with the same options and seed.
    bool reflection = true;
    std::int64_t reflection_tokens = 32;  // the reflection's length bound (it also ends at a newline)
    bool heads = true;                    // read the adapter's heads, when it has them, for the hint
    bool safety = true;                   // step 3
    int max_repairs = 2;                  // step 4: re-decodes for missing properties (0 = check only)
    bool memory = true;                   // step 0
    std::int64_t summary_tokens = 20;     // the summary's length bound, in tokens
    std::int64_t history_budget = 1024;   // prompt tokens past which the oldest exchanges give way to the summary
    std::optional<data::StyleTokens> style;  // infer/styled_prompt.h; checked by the caller
    // The reply's decoding: sampling (recommended_sampling() is the default), max_tokens; the stop
    // tokens and strings are the model's (filled by the constructor when left empty).
    GenerationOptions generation;

    ControllerOptions();
};

struct HeadGuess {
    std::string emotion;  // empty when the adapter has no emotion head
    float emotion_probability = 0.0f;
    std::string strategy;  // empty when it has no strategy head
    float strategy_probability = 0.0f;
};

// Everything the controller did in one turn.
struct TurnLog {
    int turn = 0;  // user messages in the conversation, the latest included
    std::optional<HeadGuess> heads;
    std::string reflection;  // hidden
    std::string summary;     // hidden; empty on turn 1 or with memory off
    std::int64_t history_dropped = 0;  // oldest messages left out for the summary
    std::string draft;       // hidden: the first reply decoded
    data::ReplyCheck draft_check;
    data::ReplyCheck final_check;
    std::vector<data::SafetyTrigger> triggers;  // over the user's turn and the draft
    bool redecoded = false;  // decoded under the safety settings (from the start when a trigger is in_user)
    std::size_t penalised_tokens = 0;  // ids penalised in the re-decode (0 when none)
    // "none" (no trigger), "redecoded" (the re-decode passed the rules), "fallback" (a rule's
    // fallback replaced it), each with "+help" when a crisis rule's message was appended.
    std::string safety_outcome = "none";
    int repairs = 0;                    // re-decodes for missing properties
    bool leak_removed = false;          // the leak guard dropped a sentence
    std::int64_t generated_tokens = 0;  // every step's, reflection and summary included
    std::int64_t reply_tokens = 0;      // the kept decode's (a fallback or help message is not counted)
    double seconds = 0.0;
    std::vector<std::string> prompts;   // hidden: each step's rendered prompt, in order
};

struct ControlledReply {
    std::string text;  // the only thing to show the user or to keep in the conversation history
    FinishReason finish_reason = FinishReason::Stop;  // of the kept decode (Stop for a fallback or help message)
    TurnLog log;
};

// The log as JSON. hidden = false: what a user or a response may carry (no reflection, summary,
// draft or prompts); hidden = true: everything, for an operator's --controller-log.
nlohmann::ordered_json to_json(const TurnLog& log, bool hidden);

// One decode the controller asks for: the continuation of `prompt` under `options`. A Session's
// generate (Controller::reply with a Session) or, in `kindred serve`, a job on the engine.
using DecodeFn = std::function<GenerationResult(std::span<const std::int32_t> prompt, const GenerationOptions& options)>;

class Controller {
public:
    // `model` and `rules` must outlive the controller; rules null = data::SafetyRules::builtin().
    // Reads <adapter>/heads.* when options.heads and the model's adapter has them. Builds the
    // penalised token set from rules->directive_words().
    Controller(LoadedModel& model, ControllerOptions options, const data::SafetyRules* rules = nullptr);

    // One reply to `messages` (the visible conversation, ending with a user message; Error
    // otherwise). `session` (on this model's decoder) keeps its KV cache between calls; `seed`
    // seeds the draft exactly as a plain decode would be, the other steps from values derived from it.
    ControlledReply reply(Session& session, std::span<const text::ChatMessage> messages, std::uint64_t seed);
    // The same with every decode (summary, reflection, draft, re-decode, repairs) run by `decode_fn`
    // (it must honour the options it is given: max_tokens, stop tokens and strings, sampling). The
    // heads are not read: their guess needs the pooled state of a Session.
    ControlledReply reply(const DecodeFn& decode_fn, std::span<const text::ChatMessage> messages, std::uint64_t seed);

    // A session on the controller's model with a KV cache of min(4096, the model's context) tokens.
    Session new_session() const;

    // The reply without the controller, for comparisons: the same generation options, style and
    // seed, straight from the conversation.
    GenerationResult plain_reply(Session& session, std::span<const text::ChatMessage> messages, std::uint64_t seed) const;

    // The vocabulary ids whose text, without its leading space and in lowercase, is one of the
    // rules' directive words, sorted.
    const std::vector<std::int32_t>& penalised_tokens() const { return penalised_; }
    // `base` with the directive penalty added to its logit biases: what the re-decode samples with.
    GenerationOptions redecode_options(const GenerationOptions& base) const;
    // The heads' guess at the end of `prompt` (nullopt without heads).
    std::optional<HeadGuess> guess(Session& session, std::span<const std::int32_t> prompt) const;

    const ControllerOptions& options() const { return options_; }
    const data::SafetyRules& rules() const { return *rules_; }

private:
    struct Draft;
    ControlledReply run(const DecodeFn& decode_fn, Session* heads_session, std::span<const text::ChatMessage> messages,
                        std::uint64_t seed);
    Draft decode(const DecodeFn& decode_fn, std::span<const text::ChatMessage> messages, const std::string& note,
                 const GenerationOptions& generation, TurnLog& log);
    std::string hidden_line(const DecodeFn& decode_fn, const std::string& instruction, const std::string& transcript,
                            const std::string& prefill, std::int64_t max_tokens, std::uint64_t seed, TurnLog& log);

    LoadedModel& model_;
    ControllerOptions options_;
    const data::SafetyRules* rules_;
    std::optional<model::LoadedHeads> heads_;
    std::vector<std::int32_t> penalised_;
};

// `reply` without its sentences that share six or more words in a row with `note` (the leak
// guard, step 5); `removed` is set when one was dropped.
std::string without_note_leaks(const std::string& reply, const std::string& note, bool& removed);

// One controlled reply with a controller and a session made for this call (KV cache of
// min(model context, 4096) tokens): for callers without state to keep.
ControlledReply controlled_reply(LoadedModel& model, std::span<const text::ChatMessage> messages, const ControllerOptions& options,
                                 std::uint64_t seed, const data::SafetyRules* rules = nullptr);

}  // namespace kindred::infer
