#include "eval/eqbench2.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <set>
#include <tuple>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"

namespace kindred::eval {
namespace {

double reference_score(const nlohmann::json& value, const std::string& where) {
    // The released file mixes numbers and digit strings ("6") for the same field.
    if (value.is_number()) return value.get<double>();
    if (value.is_string()) {
        const std::string& text = value.get_ref<const std::string&>();
        double parsed = 0.0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (error == std::errc() && end == text.data() + text.size()) return parsed;
    }
    fail("{}: expected a number, got {}", where, value.dump());
}

std::string require_string(const nlohmann::json& object, const char* key, const std::string& where) {
    const auto found = object.find(key);
    if (found == object.end() || !found->is_string()) fail("{}: missing string field '{}'", where, key);
    return found->get<std::string>();
}

// Removes every occurrence of `needle`, as the harness's `str.replace(needle, "")` does.
void erase_all(std::string& text, std::string_view needle) {
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at)) {
        text.erase(at, needle.size());
    }
}

struct Pcre2CodeDeleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};

// The harness's `re.findall(r'(\w+):\s+(\d+)', text)`. Python's str patterns are Unicode-aware, so
// \w and \s use Unicode properties here too (PCRE2_UCP). \d is kept to ASCII digits, which is the
// only place this port differs: Python would also read other scripts' decimal digits.
const pcre2_code* answer_pattern() {
    static const std::unique_ptr<pcre2_code, Pcre2CodeDeleter> code = [] {
        int error_code = 0;
        PCRE2_SIZE error_offset = 0;
        const auto pattern = reinterpret_cast<PCRE2_SPTR>(R"((\w+):\s+([0-9]+))");
        pcre2_code* compiled = pcre2_compile(pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                             &error_code, &error_offset, nullptr);
        if (compiled == nullptr) fail("internal error: EQ-Bench answer pattern does not compile ({})", error_code);
        return std::unique_ptr<pcre2_code, Pcre2CodeDeleter>(compiled);
    }();
    return code.get();
}

// Sort key of a question id: numeric ids first, by value, then the others by their text.
std::tuple<bool, std::uint64_t, std::string_view> id_order_key(std::string_view id) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(id.data(), id.data() + id.size(), value);
    const bool numeric = !id.empty() && error == std::errc() && end == id.data() + id.size();
    return {!numeric, numeric ? value : 0, id};
}

double penalty(double difference) {
    if (difference == 0.0) return 0.0;
    if (difference <= 5.0) return 6.5 * (1.0 / (1.0 + std::exp(-1.2 * (difference - 4.0))));
    return difference;
}

}  // namespace

std::vector<EqBench2Question> load_eqbench2_questions(const std::string& path) {
    // The released file is about 400 KB; the bound only stops a wrong path to a huge file.
    constexpr std::uintmax_t kMaxQuestionsBytes = 64ull << 20;
    const nlohmann::json root = read_json_file(path, kMaxQuestionsBytes);
    if (!root.is_object()) fail("{}: expected a JSON object of question id -> question", path);
    std::vector<EqBench2Question> questions;
    for (const auto& [id, entry] : root.items()) {
        const std::string where = path + ": question " + id;
        if (!entry.is_object()) fail("{}: expected an object", where);
        EqBench2Question question;
        question.id = id;
        question.prompt = require_string(entry, "prompt", where);
        const auto reference = entry.find("reference_answer_fullscale");
        if (reference == entry.end() || !reference->is_object()) fail("{}: missing object 'reference_answer_fullscale'", where);
        for (int i = 0; i < 4; ++i) {
            const std::string emotion_key = fmt::format("emotion{}", i + 1);
            const std::string score_key = emotion_key + "_score";
            question.emotions[i] = require_string(*reference, emotion_key.c_str(), where + ": reference_answer_fullscale");
            const auto score = reference->find(score_key);
            if (score == reference->end()) fail("{}: reference_answer_fullscale lacks '{}'", where, score_key);
            question.reference_scores[i] = reference_score(*score, where + ": reference_answer_fullscale." + score_key);
        }
        questions.push_back(std::move(question));
    }
    if (questions.empty()) fail("{}: holds no questions", path);
    std::sort(questions.begin(), questions.end(),
              [](const EqBench2Question& a, const EqBench2Question& b) { return id_order_key(a.id) < id_order_key(b.id); });
    return questions;
}

std::string eqbench2_prompt(const EqBench2Question& question) {
    std::string prompt = question.prompt;
    erase_all(prompt, " Then critique your answer by thinking it through step by step. Finally, give your revised scores.");
    erase_all(prompt, "First pass scores:\n");
    const std::size_t critique = prompt.find("Critique: <your critique here>");
    const std::size_t end_marker = prompt.find("[End of answer]");
    if (critique == std::string::npos || end_marker == std::string::npos || end_marker < critique) {
        fail("EQ-Bench v2 question {}: prompt lacks the 'Critique: <your critique here>' ... '[End of answer]' section",
             question.id);
    }
    return prompt.substr(0, critique) + "\n" + prompt.substr(end_marker) + "\nYour answer:\n";
}

std::map<std::string, double> parse_eqbench2_answer(std::string_view answer) {
    std::map<std::string, double> parsed;
    const pcre2_code* code = answer_pattern();
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
    const auto subject = reinterpret_cast<PCRE2_SPTR>(answer.data());
    PCRE2_SIZE offset = 0;
    while (offset <= answer.size()) {
        const int found = pcre2_match(code, subject, answer.size(), offset, 0, match.get(), nullptr);
        if (found < 0) break;
        const PCRE2_SIZE* groups = pcre2_get_ovector_pointer(match.get());
        const std::string name(answer.substr(groups[2], groups[3] - groups[2]));
        const std::string_view digits = answer.substr(groups[4], groups[5] - groups[4]);
        double value = 0.0;
        std::from_chars(digits.data(), digits.data() + digits.size(), value);
        parsed[name] = value;
        offset = groups[1];  // matches are non-empty, so this always advances
    }
    return parsed;
}

std::optional<double> score_eqbench2_answer(const EqBench2Question& question, const std::map<std::string, double>& parsed) {
    if (parsed.size() != 4) return std::nullopt;
    double total = 0.0;
    double penalties = 0.0;
    for (int i = 0; i < 4; ++i) {
        const auto answer = parsed.find(question.emotions[i]);
        if (answer == parsed.end()) return std::nullopt;
        total += answer->second;
        penalties += penalty(std::abs(answer->second - question.reference_scores[i]));
    }
    // The harness first runs its v1 scorer, which rejects an answer whose scores sum to zero.
    if (total <= 0.0) return std::nullopt;
    return 10.0 - penalties * 0.7477;
}

EqBench2Result summarize_eqbench2(std::vector<EqBench2QuestionResult> questions) {
    EqBench2Result result;
    double sum = 0.0;
    for (const auto& question : questions) {
        if (!question.score) continue;
        sum += *question.score;
        ++result.parseable;
    }
    result.n = questions.size();
    if (result.n > 0) result.parseable_fraction = static_cast<double>(result.parseable) / static_cast<double>(result.n);
    if (result.parseable > 0) {
        const double mean = sum / static_cast<double>(result.parseable);
        result.score = std::round(100.0 * mean / 10.0 * 100.0) / 100.0;  // the harness rounds to 2 decimals
    }
    result.questions = std::move(questions);
    return result;
}

EqBench2Result score_eqbench2_answers(const std::vector<EqBench2Question>& questions,
                                      const std::map<std::string, std::string>& answers) {
    std::set<std::string> known;
    for (const auto& question : questions) known.insert(question.id);
    for (const auto& [id, answer] : answers) {
        if (!known.contains(id)) fail("answer for question '{}', which is not in the questions file", id);
    }
    std::vector<EqBench2QuestionResult> scored;
    for (const auto& question : questions) {
        const auto answer = answers.find(question.id);
        if (answer == answers.end()) continue;
        scored.push_back({question.id, score_eqbench2_answer(question, parse_eqbench2_answer(answer->second)), answer->second, 1});
    }
    return summarize_eqbench2(std::move(scored));
}

}  // namespace kindred::eval
