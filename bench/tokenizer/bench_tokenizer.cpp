// bench/tokenizer/bench_tokenizer.cpp — single-threaded encode throughput of SmolLM2's
// tokenizer (from the GGUF) over the English lines (prose, dialogue) of the golden corpus.
// Usage: bench_tokenizer <model.gguf> <corpus.jsonl> [repetitions]
// Prints one line per measurement: "<name> <MB/s> <tokens>", which run.sh parses.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf.h"
#include "text/tokenizer.h"

namespace {

std::vector<std::string> english_lines(const std::string& path) {
    std::ifstream in(path);
    if (!in) kindred::fail("cannot open corpus '{}'", path);
    std::vector<std::string> lines;
    for (std::string json; std::getline(in, json);) {
        const nlohmann::json entry = nlohmann::json::parse(json);
        const std::string kind = entry.at("kind").get<std::string>();
        if (kind == "prose" || kind == "dialogue") lines.push_back(entry.at("text").get<std::string>());
    }
    return lines;
}

// Seconds to encode every line once, one call per line; tokens counted so nothing is elided.
double encode_all(const kindred::text::Tokenizer& tokenizer, const std::vector<std::string>& lines, std::size_t& tokens) {
    const auto start = std::chrono::steady_clock::now();
    tokens = 0;
    for (const std::string& line : lines) tokens += tokenizer.encode(line).size();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <model.gguf> <corpus.jsonl> [repetitions]\n", argv[0]);
        return 2;
    }
    try {
        const int repetitions = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5;
        const std::vector<std::string> lines = english_lines(argv[2]);
        std::size_t bytes = 0;
        for (const std::string& line : lines) bytes += line.size();
        const kindred::gguf::File file = kindred::gguf::File::open(argv[1]);
        const double megabytes = static_cast<double>(bytes) / 1e6;
        std::size_t tokens = 0;
        {
            // A fresh tokenizer: the first pass fills the word cache (cold).
            const auto tokenizer = kindred::text::Tokenizer::from_gguf(file.metadata());
            const double cold = encode_all(tokenizer, lines, tokens);
            std::printf("kindred_encode_cold %.3f %zu\n", megabytes / cold, tokens);
        }
        const auto tokenizer = kindred::text::Tokenizer::from_gguf(file.metadata());
        encode_all(tokenizer, lines, tokens);
        std::vector<double> seconds;
        for (int r = 0; r < repetitions; ++r) seconds.push_back(encode_all(tokenizer, lines, tokens));
        std::sort(seconds.begin(), seconds.end());
        std::printf("kindred_encode_warm %.3f %zu\n", megabytes / seconds[seconds.size() / 2], tokens);
        std::printf("bytes %zu lines %zu\n", bytes, lines.size());
    } catch (const kindred::Error& e) {
        std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
        return 1;
    }
    return 0;
}
