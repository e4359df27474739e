// data/records.h — the small text-record readers the released files need: a buffered line reader
// with line numbers and a length cap, ED's unquoted comma rows with their `_comma_`/`_pipe_`
// escapes, and GoEmotions' tab-separated records with CSV-style quoting (`""` inside quotes).
#pragma once

#include <cstddef>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::data {

// One bad record: the reason only; the loader adds file and line and applies the ErrorPolicy.
class RecordError : public std::runtime_error {
public:
    explicit RecordError(const std::string& reason) : std::runtime_error(reason) {}
};

// Reads a text file line by line through a fixed buffer; strips the newline and a trailing CR.
class LineReader {
public:
    static constexpr std::size_t kMaxLine = std::size_t{1} << 20;  // no released line comes near 1 MiB

    explicit LineReader(const std::string& path);  // throws Error when the file cannot be opened
    // False at end of file. A line over kMaxLine throws RecordError after skipping to its end,
    // so reading can go on under the skip policy.
    bool next(std::string& line);
    std::size_t line_number() const { return line_number_; }
    const std::string& path() const { return path_; }

private:
    bool fill();
    std::string path_;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
    std::vector<char> buffer_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::size_t line_number_ = 0;
};

// Trims ASCII whitespace (spaces, tabs, CR, LF) from both ends.
std::string trim(std::string_view text);

// Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF): JSON output needs it.
bool is_valid_utf8(std::string_view text);

// `text` with the curly single quotes U+2018 and U+2019 as ASCII apostrophes, so one rule spelling
// ("don'?t") covers both typings.
std::string with_straight_apostrophes(std::string_view text);

// Splits an ED row at every comma (the files quote nothing; text commas are written `_comma_`).
std::vector<std::string_view> split_commas(std::string_view row);
// ED text: `_comma_` -> ',', then surrounding whitespace trimmed.
std::string decode_ed_text(std::string_view field);
// ED's optional 9th field: '|'-separated candidates with `_comma_` and `_pipe_` escapes.
std::vector<std::string> decode_ed_candidates(std::string_view field);

// Reads GoEmotions-style TSV: fields split at tabs; a field opening with '"' runs to the matching
// close quote (which may be lines later) and "" inside it stands for one quote.
class TsvReader {
public:
    explicit TsvReader(const std::string& path) : lines_(path) {}
    // False at end of file; throws RecordError for a malformed record (reading can go on after it).
    bool next(std::vector<std::string>& fields);
    // The physical line on which the last record returned (or rejected) began.
    std::size_t record_line() const { return record_line_; }
    const std::string& path() const { return lines_.path(); }

private:
    LineReader lines_;
    std::string line_;
    std::size_t record_line_ = 0;
};

}  // namespace kindred::data
