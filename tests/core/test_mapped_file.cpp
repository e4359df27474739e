#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mapped_file.h"

namespace kindred {
namespace {

TEST(MappedFile, MapsContents) {
    const auto path = std::filesystem::temp_directory_path() / "kindred_mapped_file_test.bin";
    { std::ofstream(path, std::ios::binary) << "hello"; }
    MappedFile file(path.string());
    ASSERT_EQ(file.size(), 5u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(file.data()), file.size()), "hello");
    std::filesystem::remove(path);
}

TEST(MappedFile, MissingFileNamesThePath) {
    try {
        MappedFile file("/nonexistent/kindred.gguf");
        FAIL() << "expected an error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("/nonexistent/kindred.gguf"), std::string::npos);
    }
}

TEST(MappedFile, DirectoryIsRejected) {
    EXPECT_THROW(MappedFile(std::filesystem::temp_directory_path().string()), Error);
}

TEST(ReadFileText, ReadsWholeFileAndRefusesOversizeOnes) {
    const auto path = std::filesystem::temp_directory_path() / "kindred_read_file_text_test.txt";
    { std::ofstream(path, std::ios::binary) << std::string("a\0b\n", 4); }
    EXPECT_EQ(read_file_text(path.string(), 4), std::string("a\0b\n", 4));
    try {
        read_file_text(path.string(), 3);
        ADD_FAILURE() << "expected an error";
    } catch (const Error& error) {
        EXPECT_EQ(std::string(error.what()), path.string() + ": 4 bytes is more than the 3 bytes expected of this file");
    }
    std::filesystem::remove(path);
    EXPECT_THROW(read_file_text("/nonexistent/recipe.yaml", 100), Error);
    EXPECT_THROW(read_file_text(std::filesystem::temp_directory_path().string(), 1u << 30), Error);
    EXPECT_THROW(read_file_text("/dev/zero", 1u << 20), Error);  // endless: must fail, not hang
}

}  // namespace
}  // namespace kindred
