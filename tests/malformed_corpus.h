// tests/malformed_corpus.h — the check every malformed-input folder under tests/corpus/ gets:
// each file in it (hand-made hostile cases, and inputs a fuzzer once crashed or hung on) must be
// refused with a kindred::Error that names the file and holds the phrase the folder's
// EXPECTED.json gives for it, and EXPECTED.json lists no file that is missing.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kindred::testing {

inline std::string read_corpus_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// parse(file, name) must throw; `name` is what the Error is expected to name.
inline void expect_every_corpus_file_refused(
    const std::filesystem::path& folder,
    const std::function<void(const std::filesystem::path& file, const std::string& name)>& parse) {
    const nlohmann::json expected = nlohmann::json::parse(read_corpus_bytes(folder / "EXPECTED.json"));
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        if (name == "EXPECTED.json") continue;
        ++files;
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "add its phrase to EXPECTED.json";
        try {
            parse(entry.path(), name);
            ADD_FAILURE() << "accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find(name), std::string::npos) << message;
            EXPECT_NE(message.find(expected[name].get<std::string>()), std::string::npos) << message;
        }
    }
    EXPECT_EQ(files, expected.size());
}

}  // namespace kindred::testing
