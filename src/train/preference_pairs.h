// train/preference_pairs.h — preference pairs ((x, y+), (x, y−)) for DPO (docs/dpo.md): the JSONL
// lines `kindred pairs build` writes and `kindred train dpo` reads. The format is TRL's preference
// format, so users can bring their own pairs (TRL's datasets load as they are):
//   conversational, explicit prompt  {"prompt": [messages], "chosen": [assistant message],
//                                     "rejected": [assistant message]}
//   conversational, implicit prompt  {"chosen": [messages], "rejected": [messages]}: the prompt is
//                                     the longest common prefix of the two (TRL's extract_prompt)
//   standard (plain text)            {"prompt": "text", "chosen": "text", "rejected": "text"}, and
//                                     the implicit form {"chosen": "text", "rejected": "text"},
//                                     whose prompt is the common character prefix (a space before
//                                     the first difference goes to the completions, as in TRL)
// A message is {"role": system|developer|user|assistant, "content": non-empty string}. What
// follows the prompt must be exactly ONE assistant message on each side (Kindred scores one reply;
// a multi-message completion is refused), and the prompt must not be empty.
// Kindred's optional fields (pairs build writes them; they are never required):
//   "source"      string: which source made the pair (gold_vs_model, judge, safety, or anything)
//   "provenance"  object: how (model, sampling seed, judge verdicts, rule...), kept as written
//   "emotion": {"labels": [...]}, "valence", "arousal", and "strategies" on the chosen assistant
//                 message: the head labels in the prepared-example schema (docs/data.md), read
//                 only by the DPO stage's auxiliary head losses
// Other keys are ignored (TRL's datasets carry extra columns: ids, scores, "messages"). Errors read
// "<file> line <n>: <field>: <problem>".
//
// Tokenization (tokenize_pair): a conversational pair is rendered twice with the model's chat
// template, prompt + chosen and prompt + rejected, and the completion is exactly the final
// assistant turn's span (content through the end-of-turn marker, text/chat_template.h), the
// tokens the model produces: as SFT trains and as generation stops. TRL instead scores everything
// after the prompt's tokens, which for SmolLM2 adds the "\n" the template writes after <|im_end|>
// (a token the model never generates); the loss definitions are otherwise the same. A standard
// pair is tokenized as raw text (no template; BOS when the model asks for it), the completion being
// what follows the common token prefix of prompt and prompt + completion, then the EOS token.
// Control tokens come only from the template (its recorded markup, Tokenizer::encode_with_markup)
// or that appended EOS: message content and plain text that spell one stay text.
// The pair becomes ONE TokenizedExample of two documents: prompt + chosen, then prompt + rejected
// (document_starts marks the second; positions restart and attention stays inside each), targets
// on the completion tokens only, and the head sites (labels given) at the chosen document's last
// prompt token, the pooled position of SFT. So the packer (train/batch.h) packs whole pairs, and one
// forward/backward over a row serves both completions of every pair in it.
//
// Dropped and counted, never truncated: pairs longer together than max_seq_len tokens (a cut reply
// would be scored without its end). Skipped and counted: pairs whose chosen and rejected
// completions tokenize identically (no preference to learn: Δ is 0 for every policy, so the sigmoid
// loss is log 2 with gradients that cancel exactly; keeping them would only dilute the mean).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/chat_dataset.h"

namespace kindred::train {

struct PreferencePair {
    bool conversational = true;
    std::vector<text::ChatMessage> prompt;  // conversational
    std::string prompt_text;                // standard
    std::string chosen, rejected;           // the completions' text (assistant contents when conversational)
    std::string source;
    nlohmann::json provenance;              // null when absent
    std::vector<std::int32_t> emotions;     // emotion-head ids
    std::int32_t strategy = -1;
    bool has_va = false;
    float valence = 0.0f, arousal = 0.0f;
    std::size_t line = 0;
};

// Parses one JSONL line (see the formats above). Errors name file, line and field.
PreferencePair parse_pair_line(std::string_view line, const std::string& file, std::size_t line_number);

// One JSONL line (no newline) for a conversational pair, in the explicit-prompt form with
// Kindred's fields; parse_pair_line reads it back to the same pair.
std::string pair_json_line(const PreferencePair& pair);

struct PairDatasetStats {
    std::size_t lines = 0;      // non-blank lines read
    std::size_t kept = 0;
    std::size_t too_long = 0;   // dropped: both sequences together over max_seq_len tokens
    std::size_t identical = 0;  // skipped: chosen and rejected completions tokenize the same
    std::size_t longest_dropped = 0;
    std::size_t tokens = 0;     // over kept pairs (both sequences)
    std::size_t completion_tokens = 0;  // scored tokens over kept pairs (chosen + rejected)
    std::size_t violating_chosen = 0;   // kept pairs whose chosen completion breaks a safety rule
};

// What the DPO loop needs of a pair beside its TokenizedExample.
struct PairInfo {
    std::size_t chosen_length = 0;     // tokens of the prompt + chosen document (the rejected one starts there)
    std::size_t chosen_targets = 0;    // completion tokens scored, |y+|
    std::size_t rejected_targets = 0;  // |y−|
    bool chosen_violates = false;      // violation(chosen) (train/safety_replies.h)
    std::size_t line = 0;
};

struct PairDataset {
    std::string path;
    std::vector<TokenizedExample> examples;  // one per kept pair, what the packer packs
    std::vector<PairInfo> pairs;             // aligned with examples
    PairDatasetStats stats;
};

struct PairDatasetOptions {
    std::size_t max_seq_len = 0;     // prompt + chosen + prompt + rejected, in tokens
    std::size_t context_length = 0;  // the model's; max_seq_len above it is an Error
    bool add_bos = false;            // standard pairs: prepend BOS (the model's GGUF add_bos_token)
    std::size_t max_pairs = 0;       // keep the first N usable pairs (0 = all)
};

// Tokenizes one pair (see above). Errors name file and line (bytes with no token, a template
// error, an empty completion).
TokenizedExample tokenize_pair(const PreferencePair& pair, const text::Tokenizer& tokenizer,
                               const text::ChatTemplate* chat, bool add_bos, const std::string& file,
                               PairInfo& info);

// A pair already tokenized (TRL's prompt_ids / chosen_ids / rejected_ids): the same two documents
// tokenize_pair makes, every completion token scored, no head sites, no violation check (there is
// no text). Error for an empty prompt or completion.
TokenizedExample tokenized_pair(std::span<const std::int32_t> prompt, std::span<const std::int32_t> chosen,
                                std::span<const std::int32_t> rejected, std::size_t line, PairInfo& info);

// Reads, tokenizes and filters a pairs file. A conversational pair needs `chat` (Error otherwise).
PairDataset load_pair_dataset(const std::string& path, const text::Tokenizer& tokenizer, const text::ChatTemplate* chat,
                              const PairDatasetOptions& options);

// Calls `sink` for every pair of a JSONL file, line by line (blank lines skipped); counts lines.
void for_each_pair(const std::string& path, PairDatasetStats& stats, const std::function<void(PreferencePair&&)>& sink);

// One line per non-zero skip count, naming the file and the reason.
std::vector<std::string> warnings(const PairDataset& dataset, const PairDatasetOptions& options);

// FNV-1a 64 over the kept pairs' tokens and targets: what a reference cache is keyed by.
std::uint64_t fingerprint(const PairDataset& dataset);

}  // namespace kindred::train
