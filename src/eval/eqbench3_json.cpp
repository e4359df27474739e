#include "eval/eqbench3_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "text/unicode.h"

namespace kindred::eval {
namespace {

using text::utf8_append;
using text::utf8_decode_at;
using text::utf8_length_at;

char32_t code_point_at(std::string_view text, std::size_t pos, std::size_t* length) {
    *length = utf8_length_at(text, pos);
    return utf8_decode_at(text, pos, *length);
}

// json.loads' scanner (Lib/json/decoder.py and scanner.py), strict mode.
class Parser {
public:
    Parser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

    PyValue document() {
        skip_space();
        PyValue value = parse_value(0);
        skip_space();
        if (pos_ != text_.size()) error("extra data after the value");
        return value;
    }

private:
    [[noreturn]] void error(std::string_view what) const { fail("{}: invalid JSON at byte {}: {}", source_, pos_, what); }

    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
    }

    bool take_char(char c) {
        if (pos_ >= text_.size() || text_[pos_] != c) return false;
        ++pos_;
        return true;
    }

    bool take(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    PyValue parse_value(int depth) {
        if (depth >= kJudgeJsonDepth) error("nested deeper than Python's recursion limit allows");
        if (pos_ >= text_.size()) error("expecting a value");
        PyValue value;
        const char c = text_[pos_];
        if (c == '"') {
            value.kind = PyValue::Kind::String;
            value.text = parse_string();
        } else if (c == '{') {
            parse_object(value, depth);
        } else if (c == '[') {
            parse_array(value, depth);
        } else if (take("null")) {
            value.kind = PyValue::Kind::Null;
        } else if (take("true")) {
            value.kind = PyValue::Kind::Bool;
            value.boolean = true;
        } else if (take("false")) {
            value.kind = PyValue::Kind::Bool;
        } else if (take("NaN")) {
            value.kind = PyValue::Kind::Float;
            value.number = NAN;
        } else if (take("Infinity")) {
            value.kind = PyValue::Kind::Float;
            value.number = INFINITY;
        } else if (take("-Infinity")) {
            value.kind = PyValue::Kind::Float;
            value.number = -INFINITY;
        } else {
            parse_number(value);
        }
        return value;
    }

    // -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)? ; a fraction or exponent that does not complete is
    // left for the caller (and then is "extra data"), as Python's NUMBER_RE does.
    void parse_number(PyValue& value) {
        const std::size_t start = pos_;
        const auto digit = [&](std::size_t at) { return at < text_.size() && text_[at] >= '0' && text_[at] <= '9'; };
        std::size_t at = pos_;
        if (at < text_.size() && text_[at] == '-') ++at;
        if (!digit(at)) error("expecting a value");
        if (text_[at] == '0') {
            ++at;
        } else {
            while (digit(at)) ++at;
        }
        const std::size_t integer_end = at;
        bool is_float = false;
        if (at < text_.size() && text_[at] == '.' && digit(at + 1)) {
            at += 1;
            while (digit(at)) ++at;
            is_float = true;
        }
        if (at < text_.size() && (text_[at] == 'e' || text_[at] == 'E')) {
            std::size_t exponent = at + 1;
            if (exponent < text_.size() && (text_[exponent] == '+' || text_[exponent] == '-')) ++exponent;
            if (digit(exponent)) {
                while (digit(exponent)) ++exponent;
                at = exponent;
                is_float = true;
            }
        }
        pos_ = at;
        const std::string literal(text_.substr(start, at - start));
        value.number = std::strtod(literal.c_str(), nullptr);  // correctly rounded; +-inf past the range
        if (is_float) {
            value.kind = PyValue::Kind::Float;
        } else {
            value.kind = PyValue::Kind::Int;
            value.text = literal == "-0" ? "0" : std::string(text_.substr(start, integer_end - start));
        }
    }

    unsigned hex4() {
        if (pos_ + 4 > text_.size()) error("truncated \\u escape");
        unsigned code = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = text_[pos_ + i];
            code <<= 4;
            if (h >= '0' && h <= '9') code |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
            else error("invalid \\u escape");
        }
        pos_ += 4;
        return code;
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        while (true) {
            if (pos_ >= text_.size()) error("unterminated string");
            const char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20) error("control character inside a string");
            if (c != '\\') {
                out.push_back(c);
                ++pos_;
                continue;
            }
            ++pos_;
            if (pos_ >= text_.size()) error("unterminated string");
            const char escape = text_[pos_++];
            switch (escape) {
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case '/': out.push_back('/'); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    unsigned code = hex4();
                    // A high surrogate followed by an escaped low one is one character; a lone
                    // surrogate stays (Python keeps it in the str) and is written as U+FFFD here.
                    if (code >= 0xD800 && code <= 0xDBFF && text_.substr(pos_, 2) == "\\u") {
                        const std::size_t save = pos_;
                        pos_ += 2;
                        const unsigned low = hex4();
                        if (low >= 0xDC00 && low <= 0xDFFF) {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        } else {
                            pos_ = save;
                        }
                    }
                    utf8_append(out, code >= 0xD800 && code <= 0xDFFF ? 0xFFFD : static_cast<char32_t>(code));
                    break;
                }
                default: --pos_; error("invalid escape");
            }
        }
    }

    void parse_object(PyValue& value, int depth) {
        value.kind = PyValue::Kind::Dict;
        ++pos_;
        skip_space();
        if (take_char('}')) return;
        while (true) {
            if (pos_ >= text_.size() || text_[pos_] != '"') error("expecting a property name in double quotes");
            std::string key = parse_string();
            skip_space();
            if (pos_ >= text_.size() || text_[pos_] != ':') error("expecting ':' delimiter");
            ++pos_;
            skip_space();
            PyValue member = parse_value(depth + 1);
            bool replaced = false;
            for (auto& [name, existing] : value.members) {
                if (name == key) {
                    existing = std::move(member);
                    replaced = true;
                    break;
                }
            }
            if (!replaced) value.members.emplace_back(std::move(key), std::move(member));
            skip_space();
            if (take_char('}')) return;
            if (!take_char(',')) error("expecting ',' delimiter");
            skip_space();
        }
    }

    void parse_array(PyValue& value, int depth) {
        value.kind = PyValue::Kind::List;
        ++pos_;
        skip_space();
        if (take_char(']')) return;
        while (true) {
            value.items.push_back(parse_value(depth + 1));
            skip_space();
            if (take_char(']')) return;
            if (!take_char(',')) error("expecting ',' delimiter");
            skip_space();
        }
    }

    std::string_view text_;
    const std::string& source_;
    std::size_t pos_ = 0;
};

// str.splitlines() boundaries: \n \r \r\n \v \f \x1c \x1d \x1e \x85 U+2028 U+2029.
std::vector<std::string_view> python_splitlines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t length = 0;
        const char32_t cp = code_point_at(text, pos, &length);
        const bool boundary = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
                              cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!boundary) {
            pos += length;
            continue;
        }
        lines.push_back(text.substr(start, pos - start));
        pos += length;
        if (cp == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
        start = pos;
    }
    if (start < text.size()) lines.push_back(text.substr(start));
    return lines;
}

std::string_view python_lstrip(std::string_view text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t length = 0;
        if (!python_isspace(code_point_at(text, pos, &length))) break;
        pos += length;
    }
    return text.substr(pos);
}

// The first balanced {...}, quotes tracked from the start of the text (extract_first_json).
std::optional<std::string_view> first_balanced_object(std::string_view s) {
    bool in_string = false;
    bool escape_next = false;
    long depth = 0;
    std::optional<std::size_t> start;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char ch = s[i];
        if (in_string) {
            if (escape_next) escape_next = false;
            else if (ch == '\\') escape_next = true;
            else if (ch == '"') in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{') {
            if (depth == 0) start = i;
            ++depth;
        } else if (ch == '}') {
            --depth;
            if (depth == 0 && start) return s.substr(*start, i + 1 - *start);
        }
    }
    return std::nullopt;
}

// Raw CR or LF inside a string becomes the two characters \n.
std::string repair_newlines(std::string_view s) {
    std::string out;
    bool in_string = false;
    bool escape = false;
    for (const char ch : s) {
        if (in_string) {
            if (escape) {
                escape = false;
            } else if (ch == '\\') {
                escape = true;
            } else if (ch == '"') {
                in_string = false;
            } else if (ch == '\r' || ch == '\n') {
                out += "\\n";
                continue;
            }
        } else if (ch == '"') {
            in_string = true;
        }
        out.push_back(ch);
    }
    return out;
}

// A quote inside a string that is not followed (after whitespace) by , } ] or : is escaped.
std::string repair_inner_quotes(std::string_view s) {
    std::string out;
    bool in_string = false;
    bool escape = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char ch = s[i];
        if (in_string) {
            if (escape) {
                escape = false;
            } else if (ch == '\\') {
                escape = true;
            } else if (ch == '"') {
                std::size_t j = i + 1;
                std::size_t length = 0;
                while (j < s.size() && python_isspace(code_point_at(s, j, &length))) j += length;
                if (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ':') {
                    out.push_back('\\');
                } else {
                    in_string = false;
                }
            }
        } else if (ch == '"') {
            in_string = true;
        }
        out.push_back(ch);
    }
    return out;
}

std::size_t count_occurrences(std::string_view text, std::string_view needle) {
    std::size_t count = 0;
    for (std::size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) ++count;
    return count;
}

// repr(float) (Python's 'r' format: shortest round-trip digits, exponent form when the decimal
// point would sit more than 16 places right or 4 places left of the first digit).
std::string python_float_repr(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
    const std::string_view sci(buffer, static_cast<std::size_t>(result.ptr - buffer));
    const bool negative = sci.front() == '-';
    const std::size_t e = sci.find('e');
    std::string digits;
    for (const char c : sci.substr(negative ? 1 : 0, e - (negative ? 1 : 0))) {
        if (c != '.') digits.push_back(c);
    }
    const int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
    const int decpt = exponent + 1;
    std::string out = negative ? "-" : "";
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out += "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
        } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
            out += digits + std::string(static_cast<std::size_t>(decpt) - digits.size(), '0') + ".0";
        } else {
            out += digits.substr(0, static_cast<std::size_t>(decpt)) + "." + digits.substr(static_cast<std::size_t>(decpt));
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int shown = decpt - 1;
    out += shown < 0 ? "e-" : "e+";
    const std::string magnitude = std::to_string(shown < 0 ? -shown : shown);
    if (magnitude.size() < 2) out += "0";
    return out + magnitude;
}

// repr(str): single quotes unless the text holds ' and no ", escapes for \\, the quote, \n \r \t
// and other control characters (non-printable non-ASCII is rare in judge JSON and kept as is).
std::string python_str_repr(std::string_view text) {
    const bool double_quotes = text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos;
    const char quote = double_quotes ? '"' : '\'';
    std::string out(1, quote);
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == quote || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (byte < 0x20 || byte == 0x7F) {
            out += fmt::format("\\x{:02x}", byte);
        } else {
            out.push_back(c);
        }
    }
    out.push_back(quote);
    return out;
}

std::string python_repr(const PyValue& value) {
    switch (value.kind) {
        case PyValue::Kind::Null: return "None";
        case PyValue::Kind::Bool: return value.boolean ? "True" : "False";
        case PyValue::Kind::Int: return value.text;
        case PyValue::Kind::Float: return python_float_repr(value.number);
        case PyValue::Kind::String: return python_str_repr(value.text);
        case PyValue::Kind::List: {
            std::string out = "[";
            for (std::size_t i = 0; i < value.items.size(); ++i) out += (i ? ", " : "") + python_repr(value.items[i]);
            return out + "]";
        }
        case PyValue::Kind::Dict: {
            std::string out = "{";
            for (std::size_t i = 0; i < value.members.size(); ++i) {
                out += (i ? ", " : "") + python_str_repr(value.members[i].first) + ": " + python_repr(value.members[i].second);
            }
            return out + "}";
        }
    }
    return {};
}

}  // namespace

const PyValue* PyValue::find(std::string_view key) const {
    for (const auto& [name, value] : members) {
        if (name == key) return &value;
    }
    return nullptr;
}

PyValue parse_python_json(std::string_view text, const std::string& source) { return Parser(text, source).document(); }

PyValue robust_json_loads(std::string_view raw_text, const std::string& source) {
    constexpr std::string_view kJsonFence = "```json";
    if (count_occurrences(raw_text, kJsonFence) > 1) raw_text = raw_text.substr(raw_text.rfind(kJsonFence) + kJsonFence.size());
    std::string cleaned;
    bool first = true;
    for (const std::string_view line : python_splitlines(raw_text)) {
        if (python_lstrip(line).starts_with("```")) continue;
        if (!first) cleaned.push_back('\n');
        cleaned += line;
        first = false;
    }
    const std::string_view stripped = python_strip(cleaned);
    const auto object = first_balanced_object(stripped);
    if (!object) fail("{}: no balanced JSON object found", source);
    try {
        return parse_python_json(*object, source);
    } catch (const Error&) {
        // fall through to the repairs, as the harness does
    }
    return parse_python_json(repair_inner_quotes(repair_newlines(*object)), source);
}

std::string python_str(const PyValue& value) {
    return value.kind == PyValue::Kind::String ? value.text : python_repr(value);
}

bool python_isspace(char32_t cp) {
    return text::is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F);
}

std::string_view python_strip(std::string_view text) {
    text = python_lstrip(text);
    std::size_t end = text.size();
    // Walk back over whole characters: find each character's start by skipping continuation bytes.
    while (end > 0) {
        std::size_t start = end - 1;
        while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80 && end - start < 4) --start;
        std::size_t length = 0;
        const char32_t cp = code_point_at(text, start, &length);
        if (start + length != end || !python_isspace(cp)) break;
        end = start;
    }
    return text.substr(0, end);
}

std::size_t python_length(std::string_view text) {
    std::size_t count = 0;
    for (std::size_t pos = 0; pos < text.size(); pos += utf8_length_at(text, pos)) ++count;
    return count;
}

}  // namespace kindred::eval
