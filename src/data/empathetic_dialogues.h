// data/empathetic_dialogues.h — EmpatheticDialogues (Rashkin et al., 2019) from its released CSVs.
// Rows stream through one at a time; only the conversation being assembled is held in memory.
// One example per conversation: odd utterance_idx rows are the speaker (our user), even rows the
// listener (our assistant) and every listener turn is a target; the label is the row's `context`.
#pragma once

#include <string>

#include "data/source.h"

namespace kindred::data {

inline constexpr const char* kEmpatheticDialoguesLicense = "CC BY-NC 4.0";

// Reads DIR/train.csv, DIR/valid.csv and DIR/test.csv as the official train, dev and test splits.
void load_empathetic_dialogues(const std::string& dir, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink);

// Reads one ED CSV into `split`. A missing file or a wrong header throws under either policy:
// such a file is not ED at all, so there is no record to skip.
void load_empathetic_dialogues_file(const std::string& path, const std::string& split, const LoadOptions& options,
                                    SourceStats& stats, const ExampleSink& sink);

}  // namespace kindred::data
