#include "text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>

#include "core/error.h"
#include "text/unicode.h"

namespace kindred::text {

SplitBehavior parse_split_behavior(std::string_view name, std::string_view where) {
    if (name == "Removed") return SplitBehavior::Removed;
    if (name == "Isolated") return SplitBehavior::Isolated;
    if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (name == "Contiguous") return SplitBehavior::Contiguous;
    fail("{}: unknown split behavior '{}'", where, name);
}

struct Regex::Compiled {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Compiled() { pcre2_code_free(code); }
};

namespace {

// Unicode White_Space, which is what \s means to Oniguruma (HF tokenizers) and Rust. PCRE2's
// \s also takes U+180E (MONGOLIAN VOWEL SEPARATOR, a space before Unicode 6.3), which would
// split words differently, so \s and \S are spelled out with this list instead.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x0B\f\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string with_unicode_white_space(const std::string& pattern) {
    std::string out;
    bool in_class = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char next = pattern[++i];
            if (next == 's') {
                out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
            } else if (next == 'S' && !in_class) {
                out += "[^" + std::string(kWhiteSpace) + "]";
            } else {
                out += c;
                out += next;  // any other escape (including \S inside a class) stays as written
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal member, not the end of the class.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        out += c;
    }
    return out;
}

}  // namespace

Regex::Regex(const std::string& pattern, std::string_view where)
    : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
    const std::string rewritten = with_unicode_white_space(pattern);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // MATCH_INVALID_UTF: text may hold bytes that are not UTF-8; they never match and so
    // stay in the gaps, which byte-level BPE still encodes exactly.
    compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
    if (compiled_->code == nullptr) {
        std::array<PCRE2_UCHAR, 256> message{};
        pcre2_get_error_message(error_code, message.data(), message.size());
        fail("{}: regex '{}' does not compile at offset {} of '{}': {}", where, pattern, error_offset, rewritten,
             reinterpret_cast<const char*>(message.data()));
    }
    // Without JIT (unsupported platform) the interpreter gives the same matches, slower.
    compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;
Regex::Regex(Regex&& other) noexcept = default;
Regex& Regex::operator=(Regex&& other) noexcept = default;

namespace {

// One reusable match block per thread: only the overall match offsets are read, so a
// single ovector pair serves every pattern (a smaller ovector than groups still matches).
pcre2_match_data* thread_match_data() {
    struct Holder {
        pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
        ~Holder() { pcre2_match_data_free(data); }
    };
    thread_local Holder holder;
    if (holder.data == nullptr) {
        fail("pcre2: out of memory creating match data");
    }
    return holder.data;
}

}  // namespace

void Regex::find_all(std::string_view text, std::size_t begin, std::size_t end, std::vector<ByteRange>& out) const {
    pcre2_match_data* match = thread_match_data();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + begin);
    const std::size_t length = end - begin;
    std::size_t offset = 0;
    while (offset < length) {
        const int rc = compiled_->jit ? pcre2_jit_match(compiled_->code, subject, length, offset, 0, match, nullptr)
                                      : pcre2_match(compiled_->code, subject, length, offset, 0, match, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            std::array<PCRE2_UCHAR, 256> message{};
            pcre2_get_error_message(rc, message.data(), message.size());
            fail("regex '{}' failed at byte {}: {}", pattern_, begin + offset, reinterpret_cast<const char*>(message.data()));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
        if (ovector[1] > ovector[0]) {
            out.emplace_back(begin + ovector[0], begin + ovector[1]);
            offset = ovector[1];
        } else {
            // An empty match splits nothing; step over one character and search on.
            offset = ovector[0] + utf8_length_at(std::string_view(text.data() + begin, length), ovector[0]);
        }
    }
}

void PreTokenizer::split(std::string_view text, std::size_t begin, std::size_t end, std::vector<ByteRange>& out,
                         Scratch& scratch) const {
    if (begin >= end) {
        return;
    }
    // Each step splits every piece the previous step produced (HF Sequence semantics).
    std::vector<ByteRange>& current = scratch.current;
    std::vector<ByteRange>& next = scratch.next;
    std::vector<ByteRange>& matches = scratch.matches;
    std::vector<Scratch::Piece>& pieces = scratch.pieces;
    current.assign(1, {begin, end});
    for (const SplitStep& step : steps_) {
        next.clear();
        for (const ByteRange& range : current) {
            matches.clear();
            step.regex.find_all(text, range.first, range.second, matches);
            pieces.clear();
            std::size_t cursor = range.first;
            for (const ByteRange& m : matches) {
                if (m.first > cursor) {
                    pieces.push_back({{cursor, m.first}, step.invert});
                }
                pieces.push_back({m, !step.invert});
                cursor = m.second;
            }
            if (cursor < range.second) {
                pieces.push_back({{cursor, range.second}, step.invert});
            }
            const std::size_t first_out = next.size();
            bool previous_match = false;
            switch (step.behavior) {
                case SplitBehavior::Removed:
                    for (const Scratch::Piece& p : pieces) {
                        if (!p.is_match) next.push_back(p.range);
                    }
                    break;
                case SplitBehavior::Isolated:
                    for (const Scratch::Piece& p : pieces) next.push_back(p.range);
                    break;
                case SplitBehavior::MergedWithPrevious:
                    for (const Scratch::Piece& p : pieces) {
                        if (p.is_match && !previous_match && next.size() > first_out) {
                            next.back().second = p.range.second;
                        } else {
                            next.push_back(p.range);
                        }
                        previous_match = p.is_match;
                    }
                    break;
                case SplitBehavior::MergedWithNext:
                    // Mirror image of MergedWithPrevious: walk backwards, then restore order.
                    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
                        if (it->is_match && !previous_match && next.size() > first_out) {
                            next.back().first = it->range.first;
                        } else {
                            next.push_back(it->range);
                        }
                        previous_match = it->is_match;
                    }
                    std::reverse(next.begin() + static_cast<std::ptrdiff_t>(first_out), next.end());
                    break;
                case SplitBehavior::Contiguous:
                    for (const Scratch::Piece& p : pieces) {
                        if (p.is_match == previous_match && next.size() > first_out) {
                            next.back().second = p.range.second;
                        } else {
                            next.push_back(p.range);
                        }
                        previous_match = p.is_match;
                    }
                    break;
            }
        }
        current.swap(next);
    }
    out.insert(out.end(), current.begin(), current.end());
}

std::string PreTokenizer::describe() const {
    std::string result;
    for (const SplitStep& step : steps_) {
        if (!result.empty()) {
            result += " then ";
        }
        result += "/" + step.regex.pattern() + "/";
    }
    return result.empty() ? "none" : result;
}

const char* gpt2_pattern() {
    return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
}

namespace {

// The patterns as the models' own tokenizer.json files write them (llama.cpp rewrites
// the case-insensitive group by hand only because its own regex engine lacks (?i)).
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

PreTokenizer pre_tokenizer_for_gguf(const std::string& pre) {
    const std::string where = "GGUF tokenizer.ggml.pre '" + pre + "'";
    PreTokenizer result;
    const auto add = [&](const char* pattern) { result.add_split({Regex(pattern, where), SplitBehavior::Isolated, false}); };
    if (pre == "gpt-2" || pre == "gpt2") {
        add(gpt2_pattern());
    } else if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "codeshell") {
        // Every digit on its own first (HF's Digits(individual_digits) of these models), then GPT-2's.
        add(R"(\p{N})");
        add(gpt2_pattern());
    } else if (pre == "llama-bpe" || pre == "llama3") {
        add(kLlama3Pattern);
    } else if (pre == "qwen2") {
        add(kQwen2Pattern);
    } else if (pre == "gpt-4o") {
        add(kO200kPattern);
    } else {
        fail("{}: unsupported pre-tokenizer (supported: gpt-2, smollm, starcoder, refact, codeshell, llama-bpe, qwen2, gpt-4o)",
             where);
    }
    return result;
}

}  // namespace kindred::text
