// data/labels.h — the label spaces every source is mapped into: Kindred's emotion-head labels with
// their (valence, arousal) placements, the source-label mappings of EmpatheticDialogues (32),
// ESConv (11) and GoEmotions (28), and ESConv's 8 support strategies with older spellings.
// One table per fact, so docs/data.md, the data cards and the tests all read the same source.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

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

// ESConv's 8 strategies, in strategy.json's order.
std::span<const std::string_view> strategies();
// The canonical spelling of a strategy ("Questions" -> "Question", "Other" -> "Others");
// nullopt when `spelling` is none of the 8 nor a known older spelling.
std::optional<std::string_view> normalize_strategy(std::string_view spelling);

}  // namespace kindred::data
