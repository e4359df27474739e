// eval/run_journal.h — what a resumable evaluation run directory is made of (EQ-Bench 3 runs and
// comparisons, the judge's GoEmotions check): JSON-lines journals appended as answers arrive, and
// a config.json written once that a resume must match.
//
// A journal record is one write() of its whole line, then fdatasync, so a crash loses at most the
// line being written. Reading drops (and truncates away) a torn last line, which is asked for
// again; a complete line that is not a JSON object is an Error naming the file and line.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kindred::eval {

class Journal {
public:
    explicit Journal(std::string path) : path_(std::move(path)) {}
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    std::vector<nlohmann::json> read();
    void append(const nlohmann::ordered_json& record);
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

// Starts the run directory `out` with `config` as its config.json, or, with `resume`, checks that
// the stored config.json equals `config` in every key but "info" (where endpoint URLs go: a judge
// may come back on another port). Errors: a fresh run into a folder that holds files, a resume
// with nothing to resume, a config that differs (naming the key and both values).
void open_run_directory(const std::string& out, bool resume, const nlohmann::ordered_json& config);

// `record[key]` as a string; Error naming `where` and the key when missing or not a string.
std::string journal_string(const nlohmann::json& record, const char* key, const std::string& where);

// A JSON value as journals and results store it: invalid UTF-8 replaced, not thrown on.
std::string dump_json(const nlohmann::ordered_json& value);

}  // namespace kindred::eval
