#include "data/labels.h"

#include <algorithm>
#include <array>

#include "core/error.h"

namespace kindred::data {
namespace {

// Placements are ours, read off the circumplex orderings of Russell (1980, Fig. 2), Scherer (2005,
// Geneva emotion wheel) and Posner, Russell & Peterson (2005); docs/data.md gives the reasoning per row.
constexpr std::array<EmotionLabel, 27> kEmotions{{
    {"joy", {0.80, 0.45}},
    {"excitement", {0.65, 0.80}},
    {"gratitude", {0.70, 0.25}},
    {"pride", {0.65, 0.40}},
    {"admiration", {0.55, 0.35}},
    {"caring", {0.60, 0.10}},
    {"hope", {0.50, 0.25}},
    {"contentment", {0.60, -0.45}},
    {"trust", {0.45, -0.20}},
    {"nostalgia", {0.15, -0.25}},
    {"surprise", {0.10, 0.80}},
    {"curiosity", {0.30, 0.45}},
    {"sadness", {-0.70, -0.40}},
    {"loneliness", {-0.60, -0.45}},
    {"grief", {-0.85, -0.10}},
    {"depression", {-0.75, -0.65}},
    {"disappointment", {-0.60, -0.20}},
    {"fear", {-0.65, 0.75}},
    {"anxiety", {-0.50, 0.60}},
    {"anger", {-0.65, 0.75}},
    {"annoyance", {-0.50, 0.45}},
    {"disgust", {-0.65, 0.30}},
    {"shame", {-0.60, 0.20}},
    {"guilt", {-0.60, 0.05}},
    {"jealousy", {-0.55, 0.45}},
    {"confusion", {-0.20, 0.25}},
    {"neutral", {0.00, 0.00}},
}};

constexpr std::array<LabelMapping, 32> kEmpatheticDialogues{{
    {"afraid", "fear"},
    {"angry", "anger"},
    {"annoyed", "annoyance"},
    {"anticipating", "excitement"},
    {"anxious", "anxiety"},
    {"apprehensive", "anxiety"},
    {"ashamed", "shame"},
    {"caring", "caring"},
    {"confident", "pride"},
    {"content", "contentment"},
    {"devastated", "grief"},
    {"disappointed", "disappointment"},
    {"disgusted", "disgust"},
    {"embarrassed", "shame"},
    {"excited", "excitement"},
    {"faithful", "trust"},
    {"furious", "anger"},
    {"grateful", "gratitude"},
    {"guilty", "guilt"},
    {"hopeful", "hope"},
    {"impressed", "admiration"},
    {"jealous", "jealousy"},
    {"joyful", "joy"},
    {"lonely", "loneliness"},
    {"nostalgic", "nostalgia"},
    {"prepared", "pride"},
    {"proud", "pride"},
    {"sad", "sadness"},
    {"sentimental", "nostalgia"},
    {"surprised", "surprise"},
    {"terrified", "fear"},
    {"trusting", "trust"},
}};

constexpr std::array<LabelMapping, 11> kEsconv{{
    {"anxiety", "anxiety"},
    {"depression", "depression"},
    {"sadness", "sadness"},
    {"anger", "anger"},
    {"fear", "fear"},
    {"shame", "shame"},
    {"disgust", "disgust"},
    {"nervousness", "anxiety"},
    {"pain", "grief"},
    {"jealousy", "jealousy"},
    {"guilt", "guilt"},
}};

constexpr std::array<LabelMapping, 28> kGoEmotions{{
    {"admiration", "admiration"},
    {"amusement", "joy"},
    {"anger", "anger"},
    {"annoyance", "annoyance"},
    {"approval", "admiration"},
    {"caring", "caring"},
    {"confusion", "confusion"},
    {"curiosity", "curiosity"},
    {"desire", "hope"},
    {"disappointment", "disappointment"},
    {"disapproval", "annoyance"},
    {"disgust", "disgust"},
    {"embarrassment", "shame"},
    {"excitement", "excitement"},
    {"fear", "fear"},
    {"gratitude", "gratitude"},
    {"grief", "grief"},
    {"joy", "joy"},
    {"love", "caring"},
    {"nervousness", "anxiety"},
    {"optimism", "hope"},
    {"pride", "pride"},
    {"realization", "surprise"},
    {"relief", "contentment"},
    {"remorse", "guilt"},
    {"sadness", "sadness"},
    {"surprise", "surprise"},
    {"neutral", "neutral"},
}};

constexpr std::array<std::string_view, 8> kStrategies{
    "Question",
    "Restatement or Paraphrasing",
    "Reflection of feelings",
    "Self-disclosure",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Others",
};

}  // namespace

std::span<const EmotionLabel> emotion_labels() { return kEmotions; }

std::optional<std::size_t> emotion_index(std::string_view name) {
    for (std::size_t i = 0; i < kEmotions.size(); ++i) {
        if (kEmotions[i].name == name) return i;
    }
    return std::nullopt;
}

ValenceArousal emotion_va(std::string_view name) {
    const auto index = emotion_index(name);
    if (!index) fail("unknown emotion-head label '{}'", name);
    return kEmotions[*index].va;
}

std::span<const LabelMapping> empathetic_dialogues_labels() { return kEmpatheticDialogues; }
std::span<const LabelMapping> esconv_labels() { return kEsconv; }
std::span<const LabelMapping> goemotions_labels() { return kGoEmotions; }

std::optional<std::string_view> map_label(std::span<const LabelMapping> mappings, std::string_view source_label) {
    for (const auto& mapping : mappings) {
        if (mapping.source_label == source_label) return mapping.emotion;
    }
    return std::nullopt;
}

std::string_view emotion_space_name(EmotionSpace space) {
    return space == EmotionSpace::GoEmotions ? "goemotions" : "kindred";
}

std::optional<EmotionSpace> parse_emotion_space(std::string_view name) {
    if (name == "kindred") return EmotionSpace::Kindred;
    if (name == "goemotions") return EmotionSpace::GoEmotions;
    return std::nullopt;
}

std::vector<std::string_view> emotion_space_labels(EmotionSpace space) {
    std::vector<std::string_view> names;
    if (space == EmotionSpace::GoEmotions)
        for (const auto& mapping : kGoEmotions) names.push_back(mapping.source_label);
    else
        for (const auto& label : kEmotions) names.push_back(label.name);
    return names;
}

std::optional<EmotionSpace> emotion_space_of(std::span<const std::string> head_labels) {
    for (const EmotionSpace space : {EmotionSpace::Kindred, EmotionSpace::GoEmotions}) {
        const auto names = emotion_space_labels(space);
        if (std::equal(names.begin(), names.end(), head_labels.begin(), head_labels.end())) return space;
    }
    return std::nullopt;
}

std::vector<std::size_t> goemotions_readout(std::span<const std::string> head_labels) {
    const auto space = emotion_space_of(head_labels);
    if (!space)
        fail("an emotion head of {} labels starting '{}' is neither the Kindred (27) nor the GoEmotions (28) label set",
             head_labels.size(), head_labels.empty() ? std::string() : head_labels.front());
    std::vector<std::size_t> readout;
    for (std::size_t g = 0; g < kGoEmotions.size(); ++g)
        readout.push_back(*space == EmotionSpace::GoEmotions ? g : *emotion_index(kGoEmotions[g].emotion));
    return readout;
}

std::span<const std::string_view> strategies() { return kStrategies; }

std::optional<std::string_view> normalize_strategy(std::string_view spelling) {
    // The first ESConv release (and FailedESConv.json) spelled these two differently.
    if (spelling == "Questions") return kStrategies[0];
    if (spelling == "Other") return kStrategies[7];
    for (const auto strategy : kStrategies) {
        if (strategy == spelling) return strategy;
    }
    return std::nullopt;
}

}  // namespace kindred::data
