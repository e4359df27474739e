// Stop strings split across streamed pieces: held back while they might still complete, released
// when they cannot, never shown once matched.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "infer/stop_strings.h"

namespace kindred::infer {
namespace {

// Pushes the pieces in order and returns what was shown, piece by piece.
std::vector<std::string> stream(StopStringFilter& filter, const std::vector<std::string>& pieces) {
    std::vector<std::string> shown;
    for (const auto& piece : pieces) shown.push_back(filter.push(piece));
    return shown;
}

TEST(StopStrings, StopSplitAcrossPiecesIsNeverShown) {
    StopStringFilter filter({"<|im_end|>"});
    const auto shown = stream(filter, {"Hello", " there<|", "im", "_end", "|>", "more"});
    EXPECT_EQ(shown, (std::vector<std::string>{"Hello", " there", "", "", "", ""}));
    EXPECT_TRUE(filter.stopped());
    EXPECT_EQ(filter.matched(), "<|im_end|>");
    EXPECT_EQ(filter.finish(), "");
}

TEST(StopStrings, FalseStartIsReleased) {
    StopStringFilter filter({"\nUser:"});
    const auto shown = stream(filter, {"a\n", "Us", "ually"});
    EXPECT_EQ(shown, (std::vector<std::string>{"a", "", "\nUsually"}));
    EXPECT_FALSE(filter.stopped());
}

TEST(StopStrings, HeldTextIsFlushedAtTheEnd) {
    StopStringFilter filter({"STOP"});
    EXPECT_EQ(filter.push("abcST"), "abc");
    EXPECT_EQ(filter.finish(), "ST");
}

TEST(StopStrings, TextAfterTheStopInTheSamePieceIsDropped) {
    StopStringFilter filter({"##"});
    EXPECT_EQ(filter.push("one## two"), "one");
    EXPECT_TRUE(filter.stopped());
    EXPECT_EQ(filter.push("three"), "");
}

TEST(StopStrings, EarliestOfSeveralStopsWins) {
    StopStringFilter filter({"cd", "bcx", "b"});
    // "b" occurs at 1, before "cd" at 2.
    EXPECT_EQ(filter.push("abcd"), "a");
    EXPECT_EQ(filter.matched(), "b");
}

TEST(StopStrings, OverlappingPrefixesHoldTheLongestCandidate) {
    // "aab" must be caught even though "a" then "a" each look like fresh starts.
    StopStringFilter filter({"aab"});
    EXPECT_EQ(filter.push("xa"), "x");
    EXPECT_EQ(filter.push("a"), "");
    EXPECT_EQ(filter.push("a"), "a");  // "aaa": the first "a" can no longer start "aab"
    EXPECT_EQ(filter.push("b"), "");
    EXPECT_TRUE(filter.stopped());
}

TEST(StopStrings, MultiByteStopAndTextStayWholeCharacters) {
    StopStringFilter filter({"\xE2\x80\x94" "END"});  // "—END"
    // "é" then the start of the stop: the held part begins at the em dash's lead byte.
    EXPECT_EQ(filter.push("caf\xC3\xA9\xE2\x80\x94"), "caf\xC3\xA9");
    EXPECT_EQ(filter.push("EN"), "");
    EXPECT_EQ(filter.push("D"), "");
    EXPECT_TRUE(filter.stopped());
}

TEST(StopStrings, NoStopsPassesEverythingThrough) {
    StopStringFilter filter({"", ""});
    EXPECT_EQ(filter.push("abc"), "abc");
    EXPECT_EQ(filter.finish(), "");
}

}  // namespace
}  // namespace kindred::infer
