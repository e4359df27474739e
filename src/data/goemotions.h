// data/goemotions.h — GoEmotions (Demszky et al., 2020), the "simplified" release: train/dev/test
// TSVs of text, comma-separated label ids and comment id, without a header. Each comment becomes one
// emotion example (a lone user message, no LM target) that feeds only the emotion head.
#pragma once

#include <string>

#include "data/source.h"

namespace kindred::data {

inline constexpr const char* kGoEmotionsLicense = "Apache-2.0";

// Reads train.tsv, dev.tsv and test.tsv from DIR or DIR/data (the repository layout); a missing
// test.tsv is recorded in stats.missing and leaves the test split empty. When an
// emotions.txt sits beside them it must list the 28 labels in the order goemotions_labels() uses.
void load_goemotions(const std::string& dir, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink);

// Reads one TSV into `split`.
void load_goemotions_file(const std::string& path, const std::string& split, const LoadOptions& options,
                          SourceStats& stats, const ExampleSink& sink);

}  // namespace kindred::data
