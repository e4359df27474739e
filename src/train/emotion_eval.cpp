// train/emotion_eval.cpp — scoring an emotion head on a GoEmotions-format file (see emotion_eval.h).
#include "train/emotion_eval.h"

#include <algorithm>

#include "core/error.h"
#include "data/goemotions.h"
#include "model/heads.h"
#include "model/trainable_decoder.h"
#include "train/batch.h"

namespace kindred::train {

std::vector<float> emotion_probabilities(model::TrainableDecoder& trainer, const model::Heads& heads,
                                         std::span<const TokenizedExample> examples, std::size_t max_seq_len) {
    if (!heads.enabled(model::Head::Emotion)) fail("emotion evaluation: the heads have no emotion head");
    const std::int64_t classes = heads.outputs(model::Head::Emotion), hidden = heads.hidden();
    for (const auto& example : examples)
        if (example.sites.empty()) fail("emotion evaluation: the example of line {} has no head site", example.line);
    std::vector<float> probabilities;
    std::vector<float> pooled, logits;
    std::vector<std::size_t> offsets;
    for (const auto& row : pack_in_order(examples, max_seq_len)) {
        const model::TrainBatch batch = ordered_row(examples, row, offsets);
        const std::span<const float> states = trainer.forward(batch, /*train=*/false);
        pooled.clear();
        for (std::size_t j = 0; j < row.size(); ++j) {
            const auto position = offsets[j] + static_cast<std::size_t>(examples[row[j]].sites.back().position);
            const auto begin = states.begin() + static_cast<std::ptrdiff_t>(position * static_cast<std::size_t>(hidden));
            pooled.insert(pooled.end(), begin, begin + hidden);
        }
        const auto n = static_cast<std::int64_t>(row.size());
        logits.assign(static_cast<std::size_t>(n * classes), 0.0f);
        heads.forward(model::Head::Emotion, pooled.data(), n, logits.data());
        const std::size_t at = probabilities.size();
        probabilities.resize(at + logits.size());
        heads.emotion_probabilities(logits.data(), n, probabilities.data() + at);
    }
    return probabilities;
}

eval::GoEmotionsReport evaluate_goemotions_file(const std::string& tsv, model::TrainableDecoder& trainer,
                                                const model::Heads& heads, std::span<const std::string> head_labels,
                                                const text::Tokenizer& tokenizer, const text::ChatTemplate& chat,
                                                const GoEmotionsFileOptions& options) {
    data::goemotions_readout(head_labels);  // an unknown label set fails before the model runs
    data::LoadOptions load;
    load.system_prompt = options.system_prompt;
    data::SourceStats stats;
    std::vector<TokenizedExample> examples;
    std::vector<std::vector<int>> truth;
    std::vector<std::size_t> wanted = options.lines;
    std::sort(wanted.begin(), wanted.end());
    // Through the prepared-example JSON that training reads, so the rendering is training's own.
    data::load_goemotions_file(tsv, "eval", load, stats, [&](data::Example&& example) {
        const std::size_t line = example.original.value("line", std::size_t{0});
        if (!wanted.empty() && !std::binary_search(wanted.begin(), wanted.end(), line)) return;
        ChatExample chat_example;
        parse_chat_line(data::to_json(example).dump(), tsv, line, chat_example, /*keep_emotion_only=*/true,
                        data::EmotionSpace::GoEmotions);
        TokenizedExample tokens = tokenize_example(chat_example, tokenizer, chat, tsv);
        if (tokens.tokens.size() > options.max_seq_len)
            fail("{} line {}: {} tokens, more than --max-seq-len {}", tsv, line, tokens.tokens.size(), options.max_seq_len);
        truth.emplace_back(chat_example.emotions.begin(), chat_example.emotions.end());
        examples.push_back(std::move(tokens));
    });
    if (examples.empty()) fail("{}: no examples", tsv);
    if (!wanted.empty() && examples.size() != static_cast<std::size_t>(std::unique(wanted.begin(), wanted.end()) - wanted.begin()))
        fail("{}: {} of the {} sampled lines hold a record", tsv, examples.size(), options.lines.size());
    const std::vector<float> probabilities = emotion_probabilities(trainer, heads, examples, options.max_seq_len);
    const double threshold = std::isnan(options.threshold) ? heads.config().emotion_threshold : options.threshold;
    return eval::score_goemotions(probabilities, head_labels, threshold, truth);
}

}  // namespace kindred::train
