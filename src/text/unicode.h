// text/unicode.h — the few Unicode facts the tokenizer needs: UTF-8 stepping, GPT-2's
// byte<->code-point table, whitespace/word-character classes, and normalization (utf8proc)
// that remembers where each normalized byte came from, so token spans point into the
// caller's original text even when NFC changed it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::text {

// Length of the UTF-8 sequence starting at text[pos], clamped to what is left; an invalid
// lead or truncated sequence counts as one byte so that scanning always advances.
std::size_t utf8_length_at(std::string_view text, std::size_t pos);
// Decodes the code point at text[pos] (length from utf8_length_at); invalid input yields 0xFFFD.
char32_t utf8_decode_at(std::string_view text, std::size_t pos, std::size_t length);
void utf8_append(std::string& out, char32_t cp);
// True when every byte of `text` forms complete, valid UTF-8 sequences.
bool utf8_is_complete(std::string_view text);
// Length of the prefix of `bytes` that ends on a character boundary: a trailing lead byte
// still waiting for continuation bytes is excluded; anything that can never complete is kept.
std::size_t utf8_complete_prefix(std::string_view bytes);

// GPT-2's reversible map from each byte to a printable code point, and back.
struct ByteLevelTable {
    std::array<char32_t, 256> byte_to_code_point{};
    ByteLevelTable();
    // The byte a code point stands for, or -1 when it is not one of the 256.
    int byte_of(char32_t cp) const { return cp < code_point_to_byte.size() ? code_point_to_byte[cp] : -1; }

private:
    std::array<int, 324> code_point_to_byte{};  // the table's code points all lie below U+0144
};
const ByteLevelTable& byte_level_table();

// Unicode White_Space (as Rust's char::is_whitespace, which HF tokenizers uses).
bool is_whitespace(char32_t cp);
// Letter, number or '_' (HF's word-character test for single_word added tokens).
bool is_word_character(char32_t cp);
// The value 0-9 of a decimal digit of any script (category Nd, Python's \d and int()), else -1.
int decimal_digit_value(char32_t cp);

enum class NormalForm { NFC, NFD, NFKC, NFKD };

// Normalized text plus, for each normalized byte, the original byte range it came from.
// Where normalization left a stretch unchanged the map is the identity per byte; a changed
// stretch (a starter and its combining marks) maps every byte to the whole original stretch.
struct NormalizedText {
    std::string text;
    std::vector<std::size_t> begin_of;  // original start of what normalized byte i came from
    std::vector<std::size_t> end_of;    // original end of what normalized byte i came from
};
// Normalizes text[begin,end) into out (offsets relative to the whole original text).
void normalize(std::string_view text, std::size_t begin, std::size_t end, NormalForm form,
               NormalizedText& out);

}  // namespace kindred::text
