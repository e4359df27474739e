// data/source.h — what every loader shares: the bad-input policy, the per-source statistics a data
// card reports, and the callback that receives examples one at a time (loaders never hold a corpus).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/example.h"

namespace kindred::data {

// fail: the first bad record throws Error naming file, line and reason.
// skip: the record (for a dialogue, its whole conversation) is dropped and listed in the card.
enum class ErrorPolicy { Fail, Skip };

struct Dropped {
    std::string file;
    std::size_t line = 0;
    std::string reason;
};

struct SplitCounts {
    std::size_t conversations = 0;
    std::size_t utterances = 0;
    std::size_t examples = 0;
};

struct SourceStats {
    std::string source;
    std::string license;
    std::vector<std::string> files;
    std::map<std::string, SplitCounts> splits;            // "train" / "dev" / "test"
    std::map<std::string, std::size_t> labels;            // the source's own label -> count
    std::map<std::string, std::size_t> emotions;          // emotion-head label -> count
    std::map<std::string, std::size_t> strategies;        // ESConv strategy -> supporter turns
    std::vector<Dropped> dropped;
    std::vector<std::string> missing;  // optional files not found (their split stays empty)

    // Counts one kept example with its labels (conversation and utterance counts are the loader's).
    void count_example(const Example& example);
};

// Routes bad records by policy. `report` throws "file:line: reason" under Fail; under Skip it records
// the reason, plus what was dropped with the record (e.g. "conversation hit:3_conv:6"), and returns.
class Diagnostics {
public:
    Diagnostics(ErrorPolicy policy, SourceStats& stats) : policy_(policy), stats_(stats) {}
    void report(const std::string& file, std::size_t line, const std::string& reason, const std::string& dropped = {});

private:
    ErrorPolicy policy_;
    SourceStats& stats_;
};

using ExampleSink = std::function<void(Example&&)>;

// How a chat example's system message reads; style tokens are placed later (data/style.h).
struct LoadOptions {
    ErrorPolicy on_error = ErrorPolicy::Fail;
    std::string system_prompt = "You are Kindred, a warm and caring friend. Listen closely and respond with empathy.";
};

}  // namespace kindred::data
