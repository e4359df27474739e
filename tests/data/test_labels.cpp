// Label spaces: every source label maps into the emotion head, the VA table is on the circumplex
// square, strategies normalise their older spellings.
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/labels.h"

namespace kindred::data {
namespace {

TEST(Labels, EmotionHeadNamesAreUniqueAndPlacedInsideTheSquare) {
    std::set<std::string_view> names;
    for (const auto& label : emotion_labels()) {
        EXPECT_TRUE(names.insert(label.name).second) << label.name;
        EXPECT_GE(label.va.valence, -1.0) << label.name;
        EXPECT_LE(label.va.valence, 1.0) << label.name;
        EXPECT_GE(label.va.arousal, -1.0) << label.name;
        EXPECT_LE(label.va.arousal, 1.0) << label.name;
    }
    EXPECT_EQ(emotion_labels().size(), 27u);
    EXPECT_EQ(emotion_index("joy"), 0u);
    EXPECT_FALSE(emotion_index("happyish"));
    EXPECT_THROW(emotion_va("happyish"), Error);
}

TEST(Labels, SourceLabelSetsAreCompleteAndAllMapIntoTheHead) {
    const std::vector<std::pair<std::span<const LabelMapping>, std::size_t>> sources = {
        {empathetic_dialogues_labels(), 32}, {esconv_labels(), 11}, {goemotions_labels(), 28}};
    std::set<std::string_view> reached;
    for (const auto& [mappings, size] : sources) {
        EXPECT_EQ(mappings.size(), size);
        std::set<std::string_view> seen;
        for (const auto& mapping : mappings) {
            EXPECT_TRUE(seen.insert(mapping.source_label).second) << mapping.source_label;
            EXPECT_TRUE(emotion_index(mapping.emotion)) << mapping.source_label << " -> " << mapping.emotion;
            reached.insert(mapping.emotion);
        }
    }
    // No head label is dead weight: every one is reached by at least one source label.
    EXPECT_EQ(reached.size(), emotion_labels().size());
}

TEST(Labels, SpotChecksOfTheMappings) {
    EXPECT_EQ(map_label(empathetic_dialogues_labels(), "terrified"), "fear");
    EXPECT_EQ(map_label(empathetic_dialogues_labels(), "sentimental"), "nostalgia");
    EXPECT_EQ(map_label(esconv_labels(), "nervousness"), "anxiety");
    EXPECT_EQ(map_label(esconv_labels(), "pain"), "grief");
    EXPECT_EQ(map_label(goemotions_labels(), "remorse"), "guilt");
    EXPECT_EQ(goemotions_labels()[27].source_label, "neutral");  // ids index emotions.txt
    EXPECT_FALSE(map_label(esconv_labels(), "boredom"));
}

TEST(Labels, CircumplexQuadrantsOfAnchorEmotions) {
    // Russell (1980): pleasant-aroused, pleasant-calm, unpleasant-aroused, unpleasant-calm anchors.
    EXPECT_GT(emotion_va("excitement").valence, 0);
    EXPECT_GT(emotion_va("excitement").arousal, 0);
    EXPECT_GT(emotion_va("contentment").valence, 0);
    EXPECT_LT(emotion_va("contentment").arousal, 0);
    EXPECT_LT(emotion_va("fear").valence, 0);
    EXPECT_GT(emotion_va("fear").arousal, 0);
    EXPECT_LT(emotion_va("depression").valence, 0);
    EXPECT_LT(emotion_va("depression").arousal, 0);
    EXPECT_EQ(emotion_va("neutral").valence, 0);
}

TEST(Labels, StrategiesAndTheirOlderSpellings) {
    ASSERT_EQ(strategies().size(), 8u);
    for (const auto strategy : strategies()) EXPECT_EQ(normalize_strategy(strategy), strategy);
    EXPECT_EQ(normalize_strategy("Questions"), "Question");
    EXPECT_EQ(normalize_strategy("Other"), "Others");
    EXPECT_FALSE(normalize_strategy("question"));
    EXPECT_FALSE(normalize_strategy("Hugging"));
}

}  // namespace
}  // namespace kindred::data
