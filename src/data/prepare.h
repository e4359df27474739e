// data/prepare.h — `kindred data prepare` as a library call: loads the chosen sources, writes
// dev.jsonl and test.jsonl with every example in source order, draws train.jsonl from the
// temperature mixture, and writes data_card.json + data_card.md. Examples pass through one at a time;
// train examples wait in per-source spill files (only their byte offsets stay in memory).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/source.h"
#include "data/style.h"

namespace kindred::data {

struct PrepareOptions {
    std::optional<std::string> empathetic_dialogues;  // directory of train/valid/test.csv
    std::optional<std::string> esconv;                // ESConv.json or thu-coai/esconv JSONL
    std::optional<std::string> goemotions;            // directory of train/dev/test.tsv
    double alpha = 0.5;
    std::uint64_t seed = 0;
    std::optional<std::size_t> train_examples;  // mixture draws; default: all sources' train examples
    LoadOptions load;
    std::optional<StyleTokens> style;
    std::string out_dir;
    std::function<void(const std::string&)> progress;  // one human line at a time; may be empty
};

struct MixtureSource {
    std::string source;
    std::size_t examples = 0;  // n_i: the source's train examples
    double probability = 0.0;  // p_i
    std::size_t draws = 0;     // how many train.jsonl lines came from it
    std::size_t unique = 0;    // distinct examples among those draws
    std::uint64_t passes = 0;  // permutations started (more than 1 = the source was repeated)
};

struct PrepareReport {
    std::vector<SourceStats> sources;
    double alpha = 0.0;
    std::uint64_t seed = 0;
    std::size_t draws = 0;
    std::vector<MixtureSource> mixture;
    std::map<std::string, std::size_t> shard_lines;  // "train" / "dev" / "test" -> lines written
    std::optional<StyleTokens> style;
    ErrorPolicy on_error = ErrorPolicy::Fail;
};

PrepareReport prepare_corpus(const PrepareOptions& options);

nlohmann::json data_card_json(const PrepareReport& report);
std::string data_card_markdown(const PrepareReport& report);

}  // namespace kindred::data
