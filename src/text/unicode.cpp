#include "text/unicode.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

namespace kindred::text {

std::size_t utf8_length_at(std::string_view text, std::size_t pos) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    std::size_t length = 1;
    if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
    } else if (lead >= 0xE0) {
        length = lead <= 0xEF ? 3 : 1;
    } else if (lead >= 0xC2) {
        length = 2;
    }
    if (length == 1 || pos + length > text.size()) {
        return 1;
    }
    for (std::size_t i = 1; i < length; ++i) {
        if ((static_cast<unsigned char>(text[pos + i]) & 0xC0) != 0x80) {
            return 1;
        }
    }
    return length;
}

char32_t utf8_decode_at(std::string_view text, std::size_t pos, std::size_t length) {
    const auto byte = [&](std::size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[pos + i])); };
    switch (length) {
        case 1: return byte(0) < 0x80 ? byte(0) : 0xFFFD;
        case 2: return ((byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
        case 3: return ((byte(0) & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
        default: return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
    }
}

void utf8_append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool utf8_is_complete(std::string_view text) {
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t length = utf8_length_at(text, pos);
        if (length == 1 && static_cast<unsigned char>(text[pos]) >= 0x80) {
            return false;
        }
        // Overlong 3/4-byte forms, surrogates and code points past U+10FFFF are invalid too.
        const char32_t cp = utf8_decode_at(text, pos, length);
        if ((length == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (length == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        pos += length;
    }
    return true;
}

std::size_t utf8_complete_prefix(std::string_view bytes) {
    // Only the last three bytes can belong to an unfinished character.
    const std::size_t lookback = bytes.size() < 3 ? bytes.size() : 3;
    for (std::size_t back = 1; back <= lookback; ++back) {
        const std::size_t pos = bytes.size() - back;
        const auto byte = static_cast<unsigned char>(bytes[pos]);
        if ((byte & 0xC0) == 0x80) {
            continue;  // continuation byte: keep looking for its lead
        }
        std::size_t needed = 0;
        if (byte >= 0xC2 && byte <= 0xDF) {
            needed = 2;
        } else if (byte >= 0xE0 && byte <= 0xEF) {
            needed = 3;
        } else if (byte >= 0xF0 && byte <= 0xF4) {
            needed = 4;
        }
        return needed > back ? pos : bytes.size();
    }
    return bytes.size();
}

ByteLevelTable::ByteLevelTable() {
    // Printable Latin-1 bytes stand for themselves; the rest take code points from U+0100 up.
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_code_point[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    code_point_to_byte.fill(-1);
    for (int b = 0; b < 256; ++b) {
        code_point_to_byte[byte_to_code_point[static_cast<std::size_t>(b)]] = b;
    }
}

const ByteLevelTable& byte_level_table() {
    static const ByteLevelTable table;
    return table;
}

bool is_whitespace(char32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

bool is_word_character(char32_t cp) {
    if (cp == U'_') {
        return true;
    }
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
            return true;
        default:
            return false;
    }
}

int decimal_digit_value(char32_t cp) {
    const auto is_digit = [](char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND; };
    if (!is_digit(cp)) return -1;
    // Every run of Nd code points is made of whole 0..9 blocks starting at a zero (some runs, like
    // the mathematical digits, hold several blocks back to back).
    char32_t start = cp;
    while (start > 0 && is_digit(start - 1)) --start;
    return static_cast<int>((cp - start) % 10);
}

namespace {

utf8proc_option_t options_for(NormalForm form) {
    const int base = UTF8PROC_STABLE;
    switch (form) {
        case NormalForm::NFC: return static_cast<utf8proc_option_t>(base | UTF8PROC_COMPOSE);
        case NormalForm::NFD: return static_cast<utf8proc_option_t>(base | UTF8PROC_DECOMPOSE);
        case NormalForm::NFKC: return static_cast<utf8proc_option_t>(base | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        case NormalForm::NFKD: return static_cast<utf8proc_option_t>(base | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    }
    return static_cast<utf8proc_option_t>(base);
}

// utf8proc's normalization of one stretch; false when the stretch is not valid UTF-8.
bool normalize_piece(std::string_view piece, NormalForm form, std::string& out) {
    utf8proc_uint8_t* result = nullptr;
    const auto length = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(piece.data()),
                                     static_cast<utf8proc_ssize_t>(piece.size()), &result, options_for(form));
    if (length < 0) {
        return false;
    }
    const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
    out.assign(reinterpret_cast<const char*>(result), static_cast<std::size_t>(length));
    return true;
}

void append_exact(std::string_view text, std::size_t begin, std::size_t end, NormalizedText& out) {
    out.text.append(text.substr(begin, end - begin));
    for (std::size_t pos = begin; pos < end; ++pos) {
        out.begin_of.push_back(pos);
        out.end_of.push_back(pos + 1);
    }
}

void append_coarse(std::string_view normalized, std::size_t begin, std::size_t end, NormalizedText& out) {
    out.text.append(normalized);
    out.begin_of.insert(out.begin_of.end(), normalized.size(), begin);
    out.end_of.insert(out.end_of.end(), normalized.size(), end);
}

// One chunk that normalization changed: map it starter by starter when the starters
// normalize independently (the usual case), else as a whole.
void append_changed_chunk(std::string_view text, std::size_t begin, std::size_t end, NormalForm form,
                          const std::string& whole, NormalizedText& out) {
    std::vector<std::size_t> cuts{begin};
    for (std::size_t pos = begin; pos < end;) {
        const std::size_t length = utf8_length_at(text, pos);
        const char32_t cp = utf8_decode_at(text, pos, length);
        if (pos > begin && utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class == 0) {
            cuts.push_back(pos);
        }
        pos += length;
    }
    cuts.push_back(end);
    std::vector<std::string> pieces(cuts.size() - 1);
    std::string joined;
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        if (!normalize_piece(text.substr(cuts[i], cuts[i + 1] - cuts[i]), form, pieces[i])) {
            append_coarse(whole, begin, end, out);
            return;
        }
        joined += pieces[i];
    }
    if (joined != whole) {
        append_coarse(whole, begin, end, out);
        return;
    }
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        if (pieces[i] == text.substr(cuts[i], cuts[i + 1] - cuts[i])) {
            append_exact(text, cuts[i], cuts[i + 1], out);
        } else {
            append_coarse(pieces[i], cuts[i], cuts[i + 1], out);
        }
    }
}

}  // namespace

void normalize(std::string_view text, std::size_t begin, std::size_t end, NormalForm form, NormalizedText& out) {
    out.text.clear();
    out.begin_of.clear();
    out.end_of.clear();
    // No normal form changes ASCII, and no ASCII character combines with what precedes it,
    // so the text splits into independent chunks at every ASCII byte that starts a run.
    std::string normalized;
    std::size_t chunk = begin;
    while (chunk < end) {
        std::size_t next = chunk + 1;
        while (next < end && static_cast<unsigned char>(text[next]) >= 0x80) {
            ++next;
        }
        const std::string_view piece = text.substr(chunk, next - chunk);
        if (next - chunk == 1 && static_cast<unsigned char>(text[chunk]) < 0x80) {
            append_exact(text, chunk, next, out);
        } else if (!normalize_piece(piece, form, normalized) || normalized == piece) {
            append_exact(text, chunk, next, out);  // invalid UTF-8 passes through untouched
        } else {
            append_changed_chunk(text, chunk, next, form, normalized, out);
        }
        chunk = next;
    }
}

}  // namespace kindred::text
