// data/labels.h — the label spaces every source is mapped into: Kindred's emotion-head labels with
// their (valence, arousal) placements, the source-label mappings of EmpatheticDialogues (32),
// ESConv (11) and GoEmotions (28), and ESConv's 8 support strategies with older spellings.
// One table per fact, so docs/data.md, the data cards and the tests all read the same source.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::data {

// A point on Russell's circumplex: both axes in [-1, 1] (negative = unpleasant / calm).
struct ValenceArousal {
    double valence = 0.0;
    double arousal = 0.0;
};

struct EmotionLabel {
    std::string_view name;
    ValenceArousal va;
};

// The emotion head's classes, in a fixed order (the head's class index is the position here).
std::span<const EmotionLabel> emotion_labels();
// Position of `name` in emotion_labels(); nullopt for a name outside the set.
std::optional<std::size_t> emotion_index(std::string_view name);
// The (valence, arousal) of an emotion-head label; throws Error for an unknown name.
ValenceArousal emotion_va(std::string_view name);

struct LabelMapping {
    std::string_view source_label;
    std::string_view emotion;  // a name in emotion_labels()
};

// Each source's complete label list, in the source's own order, with its emotion-head label.
// GoEmotions' order is emotions.txt's, so a GoEmotions label id indexes this span.
std::span<const LabelMapping> empathetic_dialogues_labels();
std::span<const LabelMapping> esconv_labels();
std::span<const LabelMapping> goemotions_labels();
// The emotion-head label of `source_label` within `mappings`; nullopt when the label is unknown.
std::optional<std::string_view> map_label(std::span<const LabelMapping> mappings, std::string_view source_label);

// The label sets an emotion head can be trained in. Kindred: emotion_labels() (27, the product's
// head, every source mapped into it). GoEmotions: the 28 source labels in emotions.txt order, for
// a head evaluated on the GoEmotions benchmark as its authors define it (the Kindred set merges
// 9 of them, e.g. amusement and joy, which no mapping back into 28 labels can undo).
enum class EmotionSpace { Kindred, GoEmotions };
// "kindred" / "goemotions"; parse_emotion_space returns nullopt for anything else.
std::string_view emotion_space_name(EmotionSpace space);
std::optional<EmotionSpace> parse_emotion_space(std::string_view name);
// The space's label names in head order.
std::vector<std::string_view> emotion_space_labels(EmotionSpace space);

// The space whose labels, in order, are `head_labels` (a trained head's heads.json list); nullopt
// for any other list.
std::optional<EmotionSpace> emotion_space_of(std::span<const std::string> head_labels);
// For each of GoEmotions' 28 labels (emotions.txt order), the index of the head label it is read
// from: itself for a GoEmotions head, its mapped Kindred label for a Kindred head (so a Kindred
// "joy" prediction counts as both GoEmotions joy and amusement). Error naming the first labels
// when `head_labels` is neither space.
std::vector<std::size_t> goemotions_readout(std::span<const std::string> head_labels);

// ESConv's 8 strategies, in strategy.json's order.
std::span<const std::string_view> strategies();
// The canonical spelling of a strategy ("Questions" -> "Question", "Other" -> "Others");
// nullopt when `spelling` is none of the 8 nor a known older spelling.
std::optional<std::string_view> normalize_strategy(std::string_view spelling);

}  // namespace kindred::data
