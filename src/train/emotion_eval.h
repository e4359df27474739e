// train/emotion_eval.h — `kindred eval emotion`'s pipeline: a GoEmotions-format TSV (text, label
// ids, comment id) read by data::load_goemotions_file, each comment rendered and tokenized exactly
// as training renders its emotion examples (a system message, the comment as the user turn, the
// generation prompt; the head site is the last token: train/chat_dataset.h), the trainer run in
// evaluation mode over packed rows, the emotion head's probabilities at each site, and the scores
// in the original 28-label space (eval/goemotions_eval.h).
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "eval/goemotions_eval.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "train/chat_dataset.h"

namespace kindred::model {
class TrainableDecoder;
class Heads;
}  // namespace kindred::model

namespace kindred::train {

// The emotion head's probabilities (under its activation) at every example's LAST head site,
// [examples x classes]; examples are packed in order into rows of max_seq_len tokens. Error for an
// example without a site, one longer than max_seq_len, or heads without an emotion head.
std::vector<float> emotion_probabilities(model::TrainableDecoder& trainer, const model::Heads& heads,
                                         std::span<const TokenizedExample> examples, std::size_t max_seq_len);

struct GoEmotionsFileOptions {
    std::string system_prompt;      // the system message the head was trained with
    std::size_t max_seq_len = 512;  // packed row length; a longer comment is an Error naming its line
    double threshold = NAN;         // NaN: the head's own (heads.json), else the relative rule
    // Only the records that start on these lines (a sample of the file); empty: every record. A
    // line that holds no record is an Error.
    std::vector<std::size_t> lines;
};

// Reads `tsv`, tokenizes it (see above), runs the head and scores it. Errors name the file and
// line (bad records, too-long comments) or the head (not an emotion head, unknown label set).
eval::GoEmotionsReport evaluate_goemotions_file(const std::string& tsv, model::TrainableDecoder& trainer,
                                                const model::Heads& heads, std::span<const std::string> head_labels,
                                                const text::Tokenizer& tokenizer, const text::ChatTemplate& chat,
                                                const GoEmotionsFileOptions& options);

}  // namespace kindred::train
