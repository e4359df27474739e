// tests/corpus_check.h — the malformed-file corpora under tests/corpus/<name>/: every file but
// EXPECTED.json must be refused by `read` with a kindred::Error whose message holds the file's
// name and the text EXPECTED.json gives for it, and EXPECTED.json lists no file that is missing.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_paths.h"

namespace kindred::testing {

inline void expect_corpus_refused(const std::string& corpus, const std::function<void(const std::string& path)>& read) {
    const std::filesystem::path folder = source_path("tests/corpus/" + corpus);
    std::ifstream in(folder / "EXPECTED.json");
    const auto expected = nlohmann::json::parse(in);
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        if (name == "EXPECTED.json") continue;
        ++files;
        ASSERT_TRUE(expected.contains(name)) << name << " has no entry in EXPECTED.json";
        try {
            read(entry.path().string());
            ADD_FAILURE() << name << " was accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find(expected[name].get<std::string>()), std::string::npos) << name << ": " << message;
            EXPECT_NE(message.find(name), std::string::npos) << name << ": the message does not name the file: " << message;
        }
    }
    EXPECT_EQ(files, expected.size());
}

}  // namespace kindred::testing
