// train/chat_dataset.h — SFT examples: reads chat JSONL (plain `{"messages": [...]}` lines or the
// multi-task examples `kindred data prepare` writes, data/example.h), renders each conversation with
// the model's chat template, tokenizes it and derives the next-token targets for assistant-only loss.
//
// Targets: target[t] = token[t+1] when token t+1 lies inside the trained part of an assistant turn
// that is a training target, else kIgnoreTarget (-100, PyTorch's ignore_index). The trained part of
// a turn is the template's assistant span (content through the end-of-turn marker, see
// text/chat_template.h) minus the turn's style prefix (`prefix_chars` bytes at the start of the
// content, which inference pre-fills; whitespace ending the prefix stays trained, because the
// tokenizer merges it into the reply's first token). In plain chat JSONL every assistant turn is a target; in a
// prepared example only those with `"target": true`, and `"task": "emotion"` lines carry no LM
// target at all.
//
// Too long: a conversation whose tokens exceed max_seq_len is DROPPED and counted (stats.too_long),
// never truncated: a cut conversation would teach replies that stop mid-sentence without their
// end-of-turn marker, or keep a user turn with no answer. Lines with nothing to learn (no target
// turn, emotion-only examples) are also skipped and counted. warnings() turns the counts into the
// lines a trainer must print.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace kindred::train {

inline constexpr std::int32_t kIgnoreTarget = -100;

// One conversation as read from a line, before rendering.
struct ChatExample {
    std::vector<text::ChatMessage> messages;
    std::vector<bool> target;               // per message: an assistant turn the loss covers
    std::vector<std::size_t> prefix_bytes;  // per message: leading bytes of content left out of the loss
    std::size_t line = 0;                   // 1-based line in its file
};

struct TokenizedExample {
    std::vector<std::int32_t> tokens;
    std::vector<std::int32_t> targets;  // same length as tokens; kIgnoreTarget or the next token
    std::size_t target_count = 0;       // targets that are not kIgnoreTarget
    std::size_t line = 0;
};

struct ChatDatasetOptions {
    std::size_t max_seq_len = 0;     // longest conversation kept, in tokens
    std::size_t context_length = 0;  // the model's; max_seq_len above it is an Error
};

struct ChatDatasetStats {
    std::size_t lines = 0;       // non-blank lines read
    std::size_t kept = 0;
    std::size_t too_long = 0;    // dropped: more than max_seq_len tokens
    std::size_t no_targets = 0;  // skipped: no assistant target turn, or an emotion-only example
    std::size_t longest_dropped = 0;
    std::size_t target_tokens = 0;  // over kept examples
    std::size_t tokens = 0;         // over kept examples
};

struct ChatDataset {
    std::string path;
    std::vector<TokenizedExample> examples;
    ChatDatasetStats stats;
};

// Parses one JSONL line. Returns false for a line to skip (an emotion-only example) and fills
// `out` otherwise. Errors read "<file> line <n>: messages[2].role: ..." (bad JSON, missing
// `messages`, unknown role, empty content, wrong types, prefix_chars past the content).
bool parse_chat_line(std::string_view line, const std::string& file, std::size_t line_number, ChatExample& out);

// Calls `sink` for every example of a JSONL file, line by line (blank lines are skipped), so a
// corpus is never held as text. Counts lines and skipped emotion examples into `stats`.
void for_each_chat_example(const std::string& path, ChatDatasetStats& stats,
                           const std::function<void(ChatExample&&)>& sink);

// Renders and tokenizes one example. Errors (naming file and line) when the text holds bytes the
// vocabulary cannot encode or a style prefix is not where the template put the content.
TokenizedExample tokenize_example(const ChatExample& example, const text::Tokenizer& tokenizer,
                                  const text::ChatTemplate& chat, const std::string& file);

// Reads, tokenizes and filters a whole file (see the policy above). Options are validated first.
ChatDataset load_chat_dataset(const std::string& path, const text::Tokenizer& tokenizer, const text::ChatTemplate& chat,
                              const ChatDatasetOptions& options);

// One line per non-zero skip count, naming the file and the reason; empty when nothing was skipped.
std::vector<std::string> warnings(const ChatDataset& dataset, const ChatDatasetOptions& options);

}  // namespace kindred::train
