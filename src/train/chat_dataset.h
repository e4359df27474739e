// train/chat_dataset.h — SFT examples: reads chat JSONL (plain `{"messages": [...]}` lines or the
// multi-task examples `kindred data prepare` writes, data/example.h), renders each conversation with
// the model's chat template, tokenizes it and derives the next-token targets for assistant-only loss,
// the head sites (emotion / strategy / valence-arousal labels at a pooled position) and, on request,
// the safety teacher's version of the same conversation.
//
// Targets: target[t] = token[t+1] when token t+1 lies inside the trained part of an assistant turn
// that is a training target, else kIgnoreTarget (-100, PyTorch's ignore_index). The trained part of
// a turn is the template's assistant span (content through the end-of-turn marker, see
// text/chat_template.h) minus the turn's style prefix (`prefix_chars` bytes at the start of the
// content, which inference pre-fills; whitespace ending the prefix stays trained, because the
// tokenizer merges it into the reply's first token). In plain chat JSONL every assistant turn is a
// target; in a prepared example only those with `"target": true`, and `"task": "emotion"` lines
// carry no LM target at all.
//
// Head sites (prepared examples only; plain chat has none). The pooled position of a target
// assistant turn is the LAST token before the turn's assistant span, i.e. the last token of the
// assistant header the template writes (`<|im_start|>assistant\n` -> its `\n` for SmolLM2/Qwen3):
// attention is causal, so that hidden state has read the whole conversation through the user's
// latest turn and nothing of the reply, and it is exactly the state the model is in at inference
// when it starts to reply (the decoding controller can read predicted emotion/strategy before
// generating). It is found from the token byte spans (the last token ending at or before the span's
// first byte), so it does not depend on how a family spells its header. Emotion-only examples
// (GoEmotions; ED/ESConv conversations without a listener turn) have no assistant turn: they are
// rendered with the generation prompt and their site is the last token (the same state).
// Labels per site: emotions = the example's `emotion.labels` (conversation-level in ED/ESConv, so it
// holds at every site; several for GoEmotions), strategy = the FIRST of that assistant message's
// `strategies` (the one that opens the reply; ESConv only), VA = the example's valence/arousal when
// not null. A site with no label at all is not recorded. Unknown labels/strategies are Errors.
//
// Safety teacher input (ChatDatasetOptions::teacher_rules non-empty): the same conversation with
// the rules PREPENDED to the system message (`rules + "\n\n" + content`; without a system message,
// a system message of the rules, which replaces a family's default system prompt), tokenized, with
// the teacher positions whose next token is a target; its targets must equal the student's in count
// and ids (else Error naming file and line), so the KL compares the same tokens.
//
// Too long: a conversation whose tokens exceed max_seq_len is DROPPED and counted (stats.too_long),
// never truncated: a cut conversation would teach replies that stop mid-sentence without their
// end-of-turn marker, or keep a user turn with no answer. Lines with nothing to learn are skipped
// and counted: no target turn and no head site; emotion-only examples unless
// options.keep_emotion_only (then they are kept when they carry a label: they feed the heads only).
// warnings() turns the counts into the lines a trainer must print.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/labels.h"
#include "data/style.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace kindred::train {

inline constexpr std::int32_t kIgnoreTarget = -100;

// One conversation as read from a line, before rendering.
struct ChatExample {
    std::vector<text::ChatMessage> messages;
    std::vector<bool> target;               // per message: an assistant turn the loss covers
    std::vector<std::size_t> prefix_bytes;  // per message: leading bytes of content left out of the loss
    std::vector<std::int32_t> strategy;     // per message: id of its first strategy in data::strategies(), -1 = none
    std::vector<std::int32_t> emotions;     // emotion-head ids in the dataset's EmotionSpace (see ChatDatasetOptions)
    bool has_va = false;                    // valence/arousal given (not null)
    float valence = 0.0f, arousal = 0.0f;
    std::string source;                     // the prepared example's `source`; "" for plain chat
    bool emotion_only = false;              // `"task": "emotion"`: no LM target, one site at the end
    std::size_t line = 0;                   // 1-based line in its file
};

// One pooled position with the labels the heads are trained/evaluated on there.
struct HeadSite {
    std::int32_t position = 0;           // index in TokenizedExample::tokens
    std::vector<std::int32_t> emotions;  // emotion-head label ids (empty = no emotion label)
    std::int32_t strategy = -1;          // strategy id, -1 = none
    bool has_va = false;
    float valence = 0.0f, arousal = 0.0f;
};

struct TokenizedExample {
    std::vector<std::int32_t> tokens;
    // Offsets in tokens where a further document of the example starts (positions restart at 0,
    // attention stays inside each): a preference pair's rejected sequence. Empty: one document.
    std::vector<std::size_t> document_starts;
    std::vector<std::int32_t> targets;  // same length as tokens; kIgnoreTarget or the next token
    std::size_t target_count = 0;       // targets that are not kIgnoreTarget
    std::size_t line = 0;
    std::vector<HeadSite> sites;        // in position order
    std::string source;                 // "empathetic_dialogues" / "esconv" / "goemotions" / "" (plain chat)
    bool multi_label = false;           // GoEmotions: emotion F1 is multi-label
    // Safety teacher input (filled only when ChatDatasetOptions::teacher_rules is non-empty):
    std::vector<std::int32_t> teacher_tokens;     // the conversation rendered with the rules prepended
    std::vector<std::int32_t> teacher_positions;  // positions in teacher_tokens whose next token is a target,
                                                  // in order; same count and next-token ids as the student's
};

struct ChatDatasetOptions {
    std::size_t max_seq_len = 0;     // longest conversation kept, in tokens
    std::size_t context_length = 0;  // the model's; max_seq_len above it is an Error
    bool keep_emotion_only = false;  // emotion-only lines become examples with only a head site
    std::string teacher_rules = {};  // non-empty: fill teacher_tokens/teacher_positions
    // The emotion head's label set: Kindred's 27 (`emotion.labels`) or GoEmotions' 28
    // (`emotion.source_labels` of GoEmotions examples; other sources carry no emotion label there).
    data::EmotionSpace emotion_space = data::EmotionSpace::Kindred;
    // Style tokens put into every chat example as it is read (data::apply_style's placement: in
    // front of the system message, adding Kindred's persona system message when there is none, or
    // of every target reply with its prefix left out of the loss). An example that already starts
    // with style tags there is an Error naming its line.
    std::optional<data::StyleTokens> style = {};
};

struct ChatDatasetStats {
    std::size_t lines = 0;       // non-blank lines read
    std::size_t kept = 0;
    std::size_t too_long = 0;    // dropped: more than max_seq_len tokens
    std::size_t no_targets = 0;  // skipped: no assistant target turn nor head site, or an emotion-only example
    std::size_t opening_assistant_dropped = 0;  // conversations whose opening assistant turns were left out
    std::size_t sites = 0;          // head sites over kept examples
    std::size_t longest_dropped = 0;
    std::size_t target_tokens = 0;  // over kept examples
    std::size_t tokens = 0;         // over kept examples
    // The system message of the kept emotion-only examples when they all share one (what an
    // emotion head trained on them expects at evaluation: model/heads.h), else empty.
    std::size_t emotion_examples = 0;  // kept emotion-only examples
    std::string emotion_system_prompt;
    bool emotion_system_prompts_differ = false;
};

struct ChatDataset {
    std::string path;
    std::vector<TokenizedExample> examples;
    ChatDatasetStats stats;
    // The distinct styles the kept examples carry (leading tags of the system message, or of target
    // replies with a style prefix), first seen first: what the adapter records in styles.json.
    std::vector<data::StyleTokens> styles;
};

// Parses one JSONL line. Returns false for a line to skip (an emotion-only example, unless
// keep_emotion_only) and fills `out` otherwise. Errors read "<file> line <n>: messages[2].role: ..."
// (bad JSON, missing `messages`, unknown role, empty content, wrong types, prefix_chars past the
// content, an emotion label outside the emotion head's set, an unknown strategy, valence/arousal
// not a number).
bool parse_chat_line(std::string_view line, const std::string& file, std::size_t line_number, ChatExample& out,
                     bool keep_emotion_only = false, data::EmotionSpace emotion_space = data::EmotionSpace::Kindred);

// The pieces of parse_chat_line, for readers of other formats holding the same fields (preference
// pairs, train/preference_pairs.h). `where` / `field` start every message.
// One message object: role (system, developer, user, assistant), non-empty content, optional thinking.
text::ChatMessage parse_chat_message(const nlohmann::json& item, const std::string& field);
// The example-level head labels of an object: the emotion labels of `space` (`emotion.labels`, or
// GoEmotions' `emotion.source_labels` when out.source is goemotions) and valence/arousal.
void parse_head_labels(const nlohmann::json& root, const std::string& where, ChatExample& out,
                       data::EmotionSpace space = data::EmotionSpace::Kindred);
// A message's `strategies` array: the id of its first strategy in data::strategies().
std::int32_t parse_first_strategy(const nlohmann::json& strategies, const std::string& field);

// Calls `sink(line, number)` for every non-blank line of a text file (numbers from 1, a trailing
// \r kept), reading line by line so a corpus is never held whole; Error naming the file when it
// cannot be opened (`what` says what it is: "the chat dataset") or a read fails.
void for_each_nonblank_line(const std::string& path, const char* what,
                            const std::function<void(std::string_view line, std::size_t number)>& sink);

// For a template whose conversations must open with a user turn (ChatTemplate::requires_user_first,
// Gemma 3), leaves out the assistant turns before the first user turn (ESConv's supporter often
// greets first), with their targets and labels; true when it removed any.
bool drop_opening_assistant_turns(ChatExample& example);

// Calls `sink` for every example of a JSONL file, line by line (blank lines are skipped), so a
// corpus is never held as text. Counts lines and skipped emotion examples into `stats`.
void for_each_chat_example(const std::string& path, ChatDatasetStats& stats,
                           const std::function<void(ChatExample&&)>& sink, bool keep_emotion_only = false,
                           data::EmotionSpace emotion_space = data::EmotionSpace::Kindred);

// Renders and tokenizes one example, with its head sites and (teacher_rules non-empty) the
// teacher's tokens. Errors (naming file and line) when the text holds bytes the vocabulary cannot
// encode, a style prefix is not where the template put the content, a site has no token before it,
// or the teacher's targets differ from the student's.
TokenizedExample tokenize_example(const ChatExample& example, const text::Tokenizer& tokenizer,
                                  const text::ChatTemplate& chat, const std::string& file,
                                  std::string_view teacher_rules = {});

// Reads, tokenizes and filters a whole file (see the policy above). Options are validated first.
ChatDataset load_chat_dataset(const std::string& path, const text::Tokenizer& tokenizer, const text::ChatTemplate& chat,
                              const ChatDatasetOptions& options);

// One line per non-zero skip count, naming the file and the reason; empty when nothing was skipped.
std::vector<std::string> warnings(const ChatDataset& dataset, const ChatDatasetOptions& options);

}  // namespace kindred::train
