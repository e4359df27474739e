// text/pretokenizer.h — splitting text into the words BPE runs on: a chain of regex splits
// (HF `Split` with its behaviours and `invert`; llama.cpp's regex lists are the same chain),
// compiled once with PCRE2 in UTF + UCP mode and JIT-compiled when the platform allows.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kindred::text {

using ByteRange = std::pair<std::size_t, std::size_t>;  // [begin, end) in bytes

// The HF SplitDelimiterBehavior values: what happens to each regex match.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Parses HF's spelling ("Isolated", ...); throws Error naming `where` otherwise.
SplitBehavior parse_split_behavior(std::string_view name, std::string_view where);

class Regex {
public:
    // Throws Error naming `where`, the pattern and PCRE2's message when it does not compile.
    Regex(const std::string& pattern, std::string_view where);
    ~Regex();
    Regex(Regex&& other) noexcept;
    Regex& operator=(Regex&& other) noexcept;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Appends every non-empty match inside text[begin,end) (leftmost-first, non-overlapping).
    void find_all(std::string_view text, std::size_t begin, std::size_t end, std::vector<ByteRange>& out) const;
    const std::string& pattern() const { return pattern_; }

private:
    struct Compiled;
    std::string pattern_;
    std::unique_ptr<Compiled> compiled_;
};

struct SplitStep {
    Regex regex;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
};

class PreTokenizer {
public:
    // Buffers one caller reuses across split() calls, so that splitting allocates nothing
    // once they have grown.
    struct Scratch {
        struct Piece {
            ByteRange range;
            bool is_match;
        };
        std::vector<ByteRange> current, next, matches;
        std::vector<Piece> pieces;
    };

    void add_split(SplitStep step) { steps_.push_back(std::move(step)); }
    // Splits text[begin,end) into words (byte ranges, in order, never empty), appended to out.
    void split(std::string_view text, std::size_t begin, std::size_t end, std::vector<ByteRange>& out,
               Scratch& scratch) const;
    std::string describe() const;  // the patterns, for summaries

private:
    std::vector<SplitStep> steps_;
};

// The chain llama.cpp runs for a GGUF `tokenizer.ggml.pre` value; throws Error naming an
// unknown value.
PreTokenizer pre_tokenizer_for_gguf(const std::string& pre);
// GPT-2's pattern, as HF's ByteLevel pre-tokenizer uses it when use_regex is true.
const char* gpt2_pattern();

}  // namespace kindred::text
