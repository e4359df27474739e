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

}  // namespace
}  // namespace kindred
