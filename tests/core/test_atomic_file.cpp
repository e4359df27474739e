// write_file_atomically: content lands whole, the temporary never lingers, and a failure (in
// the caller's body or the file system) leaves the previous file untouched.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"

namespace kindred {
namespace {

namespace fs = std::filesystem;

class ScratchDir {
public:
    ScratchDir() : path_(fs::temp_directory_path() / ("kindred_atomic_" + std::to_string(::getpid()))) {
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~ScratchDir() { fs::remove_all(path_); }
    fs::path operator/(const std::string& name) const { return path_ / name; }
    std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path_), {})); }

private:
    fs::path path_;
};

std::string contents(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(AtomicFile, WritesWholeContentWithReadableMode) {
    const ScratchDir dir;
    const std::string path = (dir / "out.bin").string();
    write_file_atomically(path, [](const ByteSink& sink) {
        const std::uint8_t first[] = {'a', 'b'};
        const std::uint8_t second[] = {'c'};
        sink(first);
        sink(second);
    });
    EXPECT_EQ(contents(path), "abc");
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0644u);
    EXPECT_EQ(dir.entries(), 1u);  // no temporary left beside it

    write_file_atomically(path, std::string_view("replaced"));
    EXPECT_EQ(contents(path), "replaced");
    EXPECT_EQ(dir.entries(), 1u);
}

TEST(AtomicFile, FailingBodyLeavesOldFileAndNoTemporary) {
    const ScratchDir dir;
    const std::string path = (dir / "keep.txt").string();
    write_file_atomically(path, std::string_view("old"));
    EXPECT_THROW(write_file_atomically(path,
                                       [](const ByteSink& sink) {
                                           const std::uint8_t partial[] = {'n', 'e'};
                                           sink(partial);
                                           throw std::runtime_error("producer failed");
                                       }),
                 std::runtime_error);
    EXPECT_EQ(contents(path), "old");
    EXPECT_EQ(dir.entries(), 1u);
}

TEST(AtomicFile, ErrorsNameTheTarget) {
    const ScratchDir dir;
    const std::string missing_folder = (dir / "absent" / "out.bin").string();
    try {
        write_file_atomically(missing_folder, std::string_view("x"));
        FAIL() << "expected Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(missing_folder), std::string::npos) << error.what();
    }
    // Renaming onto a non-empty folder fails after the data is written; the temporary goes.
    fs::create_directories(dir / "occupied" / "child");
    const std::string onto_folder = (dir / "occupied").string();
    try {
        write_file_atomically(onto_folder, std::string_view("x"));
        FAIL() << "expected Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("cannot rename"), std::string::npos) << error.what();
    }
    EXPECT_EQ(dir.entries(), 1u);
}

TEST(AtomicFile, FsyncDirectory) {
    const ScratchDir dir;
    EXPECT_NO_THROW(fsync_directory((dir / "").string()));
    const std::string missing = (dir / "absent").string();
    try {
        fsync_directory(missing);
        FAIL() << "expected Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
    }
}

TEST(Json, ErrorsNameTheSourceAndRefuseDuplicatesAndDepth) {
    EXPECT_EQ(parse_json(R"({"a": [1, {"b": null}]})", "ok.json"), nlohmann::json::parse(R"({"a": [1, {"b": null}]})"));
    const auto message = [](std::string_view text, int depth) {
        try {
            parse_json(text, "in.json", depth);
        } catch (const Error& error) {
            return std::string(error.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(message(R"({"a": 1, "a": 2})", 8), "in.json: key 'a' appears twice");
    // The same key in sibling or nested objects is fine; only one object's keys must differ.
    EXPECT_EQ(message(R"({"a": {"a": 1}, "b": {"a": 2}})", 8), "accepted");
    EXPECT_EQ(message("[[[]]]", 3), "accepted");
    EXPECT_EQ(message("[[[[]]]]", 3), "in.json: JSON nested deeper than 3 levels");
    EXPECT_EQ(message(std::string(100000, '['), 64), "in.json: JSON nested deeper than 64 levels");
    EXPECT_EQ(message("{", 8).rfind("in.json: invalid JSON: ", 0), 0u);
}

}  // namespace
}  // namespace kindred
