// data/reply_checker.h — the rule-based checker of the decoding controller: does a reply
// (i) acknowledge what the user shared, (ii) name a feeling, (iii) ask a gentle follow-up question?
// Plus the signals the error taxonomy counts (advice-giving, a repetition loop). Pure text rules,
// documented with their precision and recall on a hand-labelled set in docs/controller.md
// (tests/data/fixtures/checker/, tests/data/test_reply_checker.cpp).
//
// - Acknowledgment: a phrase from a fixed list of sympathy, validation and recognition openers
//   ("I'm sorry", "that sounds", "it must be", "I hear you", "no wonder", "congratulations", "that's
//   so hard", "it's okay to feel", "thank you for sharing", ...).
// - Named feeling: a word of the feeling lexicon (feeling_lexicon(): the emotion head's labels,
//   every EmpatheticDialogues, ESConv and GoEmotions label, plus their everyday forms such as "sad",
//   "scared", "worried", "frustrated", "overwhelmed"), counted when the sentence it is in speaks to
//   or about the user ("you", "your", "sounds", "must", "feel", "it's okay to") and the word is not
//   the replier's own feeling ("I'm glad", "I feel sad too").
// - Gentle follow-up question: a sentence ending in '?' that is not a judgement ("why didn't you",
//   "what were you thinking", "are you serious") nor a change of subject ("what's your name", "do
//   you like ...").
// - Advice: "you should/must/need to", "I (would) recommend/suggest", "have you tried", "try to",
//   or a sentence opening with an imperative ("Just ...", "Stop ...", "Try ...").
// - Repetition loop: a four-word sequence three or more times, or one sentence of four or more
//   words twice or more.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/labels.h"

namespace kindred::data {

struct ReplyCheck {
    bool acknowledgment = false;
    bool named_feeling = false;
    bool question = false;               // a gentle follow-up question
    std::vector<std::string> feelings;   // emotion-head labels named (as counted above), first mention first
    bool advice = false;
    bool repetition_loop = false;

    bool complete() const { return acknowledgment && named_feeling && question; }
    // The missing properties as words for people and for repair instructions:
    // "acknowledgment", "named feeling", "question".
    std::vector<std::string> missing() const;
    int score() const { return int{acknowledgment} + int{named_feeling} + int{question}; }
};

ReplyCheck check_reply(std::string_view reply);

// Byte ranges [begin, end) of the sentences of `text`: a sentence ends after a run of '.', '!', '?'
// (and a closing '"'), or at a newline; leading whitespace is not part of it, empty ones are skipped.
std::vector<std::pair<std::size_t, std::size_t>> sentence_spans(std::string_view text);
// The words of `text` in lowercase: runs of letters, digits, apostrophes and non-ASCII bytes.
std::vector<std::string> words_of(std::string_view text);

// The feeling lexicon: each word with the emotion-head label it names (lowercase words; a word
// appears once).
std::span<const LabelMapping> feeling_lexicon();

// Whether any of `named` fits any of `expected` (emotion-head labels): the same label, or labels
// whose (valence, arousal) placements lie within 0.35 of each other (e.g. anxiety and fear,
// sadness and loneliness). Empty `named` or `expected`: false.
bool feelings_match(std::span<const std::string> named, std::span<const std::string> expected);

}  // namespace kindred::data
