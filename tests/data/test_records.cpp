// The record readers: line reader, ED's unquoted rows and escapes, GoEmotions' quoted TSV.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/records.h"
#include "data_test_util.h"

namespace kindred::data {
namespace {

using testing::TempDir;

TEST(LineReader, StripsNewlinesAndCarriageReturnsAndCountsLines) {
    TempDir dir;
    LineReader reader(dir.write("a.txt", "one\r\ntwo\n\nthree"));
    std::string line;
    ASSERT_TRUE(reader.next(line));
    EXPECT_EQ(line, "one");
    ASSERT_TRUE(reader.next(line));
    EXPECT_EQ(line, "two");
    ASSERT_TRUE(reader.next(line));
    EXPECT_EQ(line, "");
    ASSERT_TRUE(reader.next(line));
    EXPECT_EQ(line, "three");
    EXPECT_EQ(reader.line_number(), 4u);
    EXPECT_FALSE(reader.next(line));
}

TEST(LineReader, RejectsAnOverlongLineAndGoesOn) {
    TempDir dir;
    LineReader reader(dir.write("a.txt", std::string(LineReader::kMaxLine + 10, 'x') + "\nnext\n"));
    std::string line;
    EXPECT_THROW(reader.next(line), RecordError);
    ASSERT_TRUE(reader.next(line));
    EXPECT_EQ(line, "next");
    EXPECT_EQ(reader.line_number(), 2u);
}

TEST(LineReader, MissingFileIsAnError) { EXPECT_THROW(LineReader("/nonexistent/kindred.csv"), Error); }

TEST(EdRows, CommaEscapesTrailingSpacesAndCandidates) {
    EXPECT_EQ(split_commas("a,b,,d").size(), 4u);
    EXPECT_EQ(split_commas("").size(), 1u);
    EXPECT_EQ(decode_ed_text("Yes_comma_ I did.  "), "Yes, I did.");
    const auto candidates = decode_ed_candidates("Well_comma_ ok|a _pipe_ b|last ");
    ASSERT_EQ(candidates.size(), 3u);
    EXPECT_EQ(candidates[0], "Well, ok");
    EXPECT_EQ(candidates[1], "a | b");
    EXPECT_EQ(candidates[2], "last");
}

TEST(Utf8, AcceptsWellFormedAndRejectsTheRest) {
    EXPECT_TRUE(is_valid_utf8("plain"));
    EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x80\x99 \xf0\x9f\x98\x80"));
    EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xff"));
}

TEST(TsvReader, QuotedFieldsWithDoubledQuotesTabsAndNewlines) {
    TempDir dir;
    TsvReader reader(dir.write("a.tsv",
                               "plain\t1\tid1\n"
                               "\"say \"\"hi\"\"\"\t2\tid2\n"
                               "\"tab\there\"\t3\tid3\n"
                               "\"two\nlines\"\t4\tid4\n"
                               "after\t5\tid5\n"));
    std::vector<std::string> fields;
    ASSERT_TRUE(reader.next(fields));
    EXPECT_EQ(fields, (std::vector<std::string>{"plain", "1", "id1"}));
    ASSERT_TRUE(reader.next(fields));
    EXPECT_EQ(fields[0], "say \"hi\"");
    ASSERT_TRUE(reader.next(fields));
    EXPECT_EQ(fields[0], "tab\there");
    ASSERT_TRUE(reader.next(fields));
    EXPECT_EQ(fields[0], "two\nlines");
    EXPECT_EQ(reader.record_line(), 4u);
    ASSERT_TRUE(reader.next(fields));
    EXPECT_EQ(fields[0], "after");
    EXPECT_EQ(reader.record_line(), 6u);
    EXPECT_FALSE(reader.next(fields));
}

TEST(TsvReader, MalformedQuotes) {
    TempDir dir;
    TsvReader after_quote(dir.write("a.tsv", "\"closed\"junk\t1\tid\nok\t1\tid\n"));
    std::vector<std::string> fields;
    EXPECT_THROW(after_quote.next(fields), RecordError);
    ASSERT_TRUE(after_quote.next(fields));  // reading goes on at the next line
    EXPECT_EQ(fields[0], "ok");

    TsvReader unterminated(dir.write("b.tsv", "\"open\t1\tid\nmore\n"));
    EXPECT_THROW(unterminated.next(fields), RecordError);
    EXPECT_EQ(unterminated.record_line(), 1u);
    EXPECT_FALSE(unterminated.next(fields));
}

}  // namespace
}  // namespace kindred::data
