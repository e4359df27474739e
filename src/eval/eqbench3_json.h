// eval/eqbench3_json.h — reading a judge's answer the way EQ-Bench 3's harness does
// (github EQ-bench/eqbench3, utils/utils.py robust_json_loads, then Python's json.loads): the
// judge writes prose, code fences and JSON with unescaped newlines or stray quotes, and the
// harness digs one object out of it. The same text must give the same object here, or a score
// that differs from the official one, so this follows Python's rules rather than strict JSON:
// NaN, Infinity and -Infinity are numbers; a key given twice keeps its first position and its
// last value (a Python dict); integers and floats stay apart (their str() differs); control
// characters inside strings are refused (json.loads strict mode). Unicode facts that Python
// applies to str (splitlines' line breaks, isspace) are applied to the UTF-8 text.
// Judge answers are untrusted: every failure is an Error (never a crash); nesting deeper than
// kJudgeJsonDepth counts as unparseable, as Python's recursion limit makes it there.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kindred::eval {

inline constexpr int kJudgeJsonDepth = 500;

// A value as Python's json.loads returns it.
struct PyValue {
    enum class Kind { Null, Bool, Int, Float, String, List, Dict };
    Kind kind = Kind::Null;
    bool boolean = false;
    std::string text;    // String: the UTF-8 text; Int: the literal's digits as Python prints them
    double number = 0.0; // Float: the value; Int: float(value), +-inf past the double range
    std::vector<PyValue> items;                            // List
    std::vector<std::pair<std::string, PyValue>> members;  // Dict, in insertion order

    const PyValue* find(std::string_view key) const;
};

// json.loads(text): one value, surrounded by JSON whitespace only. Error (naming `source`, the
// byte offset and what was wrong) otherwise.
PyValue parse_python_json(std::string_view text, const std::string& source);

// robust_json_loads(text): keeps what follows the last "```json" when there are two or more,
// drops every line that starts (after whitespace) with ```, takes the first balanced {...}
// (quotes tracked from the start of the text), and parses it; when that fails, repairs raw
// newlines inside strings and escapes quotes that do not end a string, then parses again.
// Error when no balanced object is found or the repaired text is still not JSON.
PyValue robust_json_loads(std::string_view text, const std::string& source);

// str(value) as Python prints it (repr of the containers' elements): what the harness searches
// for a number when a rubric score is not a number itself.
std::string python_str(const PyValue& value);

// Python's str.isspace() for one code point.
bool python_isspace(char32_t cp);
// str.strip() with that whitespace.
std::string_view python_strip(std::string_view text);
// len(): code points of valid UTF-8 (an invalid byte counts as one).
std::size_t python_length(std::string_view text);

}  // namespace kindred::eval
