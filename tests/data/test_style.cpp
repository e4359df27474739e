// Style tokens: the documented set (unknown keys and values are errors naming the known ones),
// canonical order, leading_style, and the trained-styles record (round trip and the malformed
// corpus tests/corpus/styles-malformed/).
#include <filesystem>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/style.h"
#include "malformed_corpus.h"
#include "scratch_dir.h"
#include "test_paths.h"

namespace kindred::data {
namespace {

TEST(StyleSet, UnknownKeysAndValuesNameTheKnownStyles) {
    for (const char* bad : {"<tone:angry>", "<mood:warm>", "<tone:warm><tone:calm>"}) {
        try {
            parse_style_tokens(bad, StylePlacement::System);
            ADD_FAILURE() << bad << " was accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            if (std::string(bad) != "<tone:warm><tone:calm>") {
                EXPECT_NE(message.find("tone: warm|calm|gentle|playful; persona: best_friend|listener|companion"), std::string::npos)
                    << message;
            } else {
                EXPECT_NE(message.find("given twice"), std::string::npos) << message;
            }
        }
    }
    EXPECT_EQ(known_styles_text(), "tone: warm|calm|gentle|playful; persona: best_friend|listener|companion");
    ASSERT_EQ(style_keys().size(), 2u);
    EXPECT_EQ(style_keys()[0].key, "tone");
    EXPECT_EQ(style_keys()[1].key, "persona");
}

TEST(StyleSet, TagsComeOutInCanonicalOrder) {
    EXPECT_EQ(parse_style_tokens("<persona:listener><tone:calm>", StylePlacement::System).text, "<tone:calm><persona:listener>");
    EXPECT_EQ(parse_style_tokens("<persona:companion>", StylePlacement::Assistant).text, "<persona:companion>");
    EXPECT_EQ(styled(parse_style_tokens("<tone:warm>", StylePlacement::System), "Hi"), "<tone:warm> Hi");
}

TEST(StyleSet, LeadingStyleFindsOnlyWellFormedDocumentedTags) {
    EXPECT_EQ(leading_style("<persona:listener><tone:calm> You are Kindred."), "<tone:calm><persona:listener>");
    EXPECT_EQ(leading_style("<tone:warm> hi"), "<tone:warm>");
    EXPECT_FALSE(leading_style("You are Kindred.").has_value());
    EXPECT_FALSE(leading_style("<tone:angry> hi").has_value());
    EXPECT_FALSE(leading_style("<tone:warm>hi").has_value());  // styled() always writes the space
    EXPECT_FALSE(leading_style("<b> bold").has_value());
}

TEST(TrainedStyles, RoundTripDeduplicatesAndMissingFileMeansNone) {
    kindred::testing::ScratchDir dir("kindred-styles");
    EXPECT_TRUE(read_trained_styles(dir.path().string()).empty());
    const StyleTokens warm = parse_style_tokens("<tone:warm><persona:best_friend>", StylePlacement::System);
    const StyleTokens calm = parse_style_tokens("<tone:calm>", StylePlacement::Assistant);
    const std::vector<StyleTokens> written = {warm, calm, warm};
    write_trained_styles(dir.path().string(), written);
    const auto read = read_trained_styles(dir.path().string());
    ASSERT_EQ(read.size(), 2u);
    EXPECT_EQ(read[0], warm);
    EXPECT_EQ(read[1], calm);
}

TEST(TrainedStyles, MalformedCorpusIsRefused) {
    kindred::testing::expect_every_corpus_file_refused(kindred::testing::source_path("tests/corpus/styles-malformed"),
                                                       [](const std::filesystem::path& file, const std::string& name) {
                                                           parse_trained_styles(kindred::testing::read_corpus_bytes(file), name);
                                                       });
}

}  // namespace
}  // namespace kindred::data
