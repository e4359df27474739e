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

// The two label sets an emotion head can be trained in, and how each is read out into GoEmotions'
// 28 labels for the benchmark (eval/goemotions_eval.h).
TEST(Labels, EmotionSpacesAndTheGoEmotionsReadout) {
    const auto kindred = emotion_space_labels(EmotionSpace::Kindred);
    const auto goemotions = emotion_space_labels(EmotionSpace::GoEmotions);
    ASSERT_EQ(kindred.size(), 27u);
    ASSERT_EQ(goemotions.size(), 28u);
    EXPECT_EQ(goemotions.front(), "admiration");
    EXPECT_EQ(goemotions.back(), "neutral");
    EXPECT_EQ(parse_emotion_space("goemotions"), EmotionSpace::GoEmotions);
    EXPECT_EQ(emotion_space_name(EmotionSpace::Kindred), "kindred");
    EXPECT_FALSE(parse_emotion_space("ekman"));

    const std::vector<std::string> goemotions_head(goemotions.begin(), goemotions.end());
    const std::vector<std::string> kindred_head(kindred.begin(), kindred.end());
    EXPECT_EQ(emotion_space_of(goemotions_head), EmotionSpace::GoEmotions);
    EXPECT_EQ(emotion_space_of(kindred_head), EmotionSpace::Kindred);
    const auto identity = goemotions_readout(goemotions_head);
    for (std::size_t g = 0; g < identity.size(); ++g) EXPECT_EQ(identity[g], g);
    const auto readout = goemotions_readout(kindred_head);
    ASSERT_EQ(readout.size(), 28u);
    EXPECT_EQ(kindred[readout[1]], "joy");     // amusement
    EXPECT_EQ(kindred[readout[17]], "joy");    // joy
    EXPECT_EQ(kindred[readout[18]], "caring");  // love
    EXPECT_EQ(kindred[readout[24]], "guilt");   // remorse
    std::vector<std::string> reordered = goemotions_head;
    std::swap(reordered[0], reordered[1]);
    EXPECT_FALSE(emotion_space_of(reordered));
    EXPECT_THROW(goemotions_readout(reordered), Error);
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
