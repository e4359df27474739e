#include "eval/eqbench3.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/eqbench3_json.h"
#include "net/http.h"
#include "text/unicode.h"

namespace kindred::eval {
namespace {

// The data files are a few hundred KB; far more is not the benchmark.
constexpr std::uintmax_t kMaxDataFileBytes = 16u << 20;

// utils/constants.py
constexpr std::array<std::string_view, 4> kNoRolePlayIds = {"8", "10", "12", "14"};
constexpr std::array<std::string_view, 9> kDraftingIds = {"201", "202", "203", "204", "205", "206", "207", "208", "209"};
// Role-play sections (SECTION_CHAR_LIMITS), drafting sections (..._MESSAGE_DRAFT), raw replies.
constexpr std::array<std::size_t, 3> kRolePlaySectionChars = {2200, 1600, 1600};
constexpr std::array<std::size_t, 3> kDraftingSectionChars = {2200, 1600, 1600};
constexpr std::size_t kRawReplyChars = 4000;
constexpr std::size_t kDebriefChars = 4000;
constexpr std::size_t kAnalysisReplyChars = 6000;
constexpr std::string_view kTruncatedMark = "... [truncated]";

bool is_python_space_byte(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }

// Lines as Python's text-mode file iteration yields them (universal newlines: \n, \r\n and \r
// end a line), without their terminator.
std::vector<std::string_view> file_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\n' && text[i] != '\r') continue;
        lines.push_back(text.substr(start, i - start));
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
        start = i + 1;
    }
    if (start < text.size()) lines.push_back(text.substr(start));
    return lines;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
    return text;
}

std::string without_stars_and_hashes(std::string text) {
    std::erase(text, '*');
    std::erase(text, '#');
    return text;
}

// str.format with named fields only, as the harness calls it on its templates: `{name}` is
// replaced, `{{` and `}}` are literal braces, anything else is the KeyError/ValueError Python
// would raise (named here with the template file).
std::string python_format(std::string_view pattern, const std::map<std::string, std::string_view>& fields, const std::string& source) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '}') {
            if (i + 1 < pattern.size() && pattern[i + 1] == '}') {
                out.push_back('}');
                ++i;
                continue;
            }
            fail("{}: single '}}' at byte {} (the harness formats this file with str.format)", source, i);
        }
        if (c != '{') {
            out.push_back(c);
            continue;
        }
        if (i + 1 < pattern.size() && pattern[i + 1] == '{') {
            out.push_back('{');
            ++i;
            continue;
        }
        const std::size_t close = pattern.find('}', i);
        if (close == std::string_view::npos) fail("{}: unclosed '{{' at byte {}", source, i);
        const std::string name(pattern.substr(i + 1, close - i - 1));
        const auto field = fields.find(name);
        if (field == fields.end()) fail("{}: unknown placeholder {{{}}} (the harness fills only the ones it knows)", source, name);
        out += field->second;
        i = close;
    }
    return out;
}

void require_placeholders(const std::string& text, const std::string& source, std::initializer_list<std::string_view> names) {
    for (const std::string_view name : names) {
        if (text.find("{" + std::string(name) + "}") == std::string::npos) fail("{}: missing the placeholder {{{}}}", source, name);
    }
}

// Searches with the harness's flags (re.IGNORECASE | re.DOTALL on a str): UTF, Unicode classes.
class Regex {
public:
    explicit Regex(const char* pattern) {
        int error_code = 0;
        PCRE2_SIZE error_offset = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                              PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_DOTALL | PCRE2_MATCH_INVALID_UTF, &error_code,
                              &error_offset, nullptr);
        if (code_ == nullptr) fail("internal: EQ-Bench 3 section pattern does not compile at {}", error_offset);
    }
    ~Regex() { pcre2_code_free(code_); }
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Group 1 of the first match, stripped; "" when there is none.
    std::string first_group(std::string_view text) const {
        std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(pcre2_match_data_create_from_pattern(code_, nullptr),
                                                                                  &pcre2_match_data_free);
        const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, match.get(), nullptr);
        if (rc < 2) return {};
        const PCRE2_SIZE* offsets = pcre2_get_ovector_pointer(match.get());
        return std::string(python_strip(text.substr(offsets[2], offsets[3] - offsets[2])));
    }

private:
    pcre2_code* code_ = nullptr;
};

// conversation.py _parse_response; Python's \Z (end of text) is PCRE's \z.
const std::array<Regex, 3>& role_play_patterns() {
    static const std::array<Regex, 3> patterns = {Regex("#\\s*I[’']m thinking & feeling\\s*\\n([\\s\\S]*?)(?=#|\\z)"),
                                                  Regex("#\\s*They[’']re thinking & feeling\\s*\\n([\\s\\S]*?)(?=#|\\z)"),
                                                  Regex("#\\s*My response\\s*\\n([\\s\\S]*?)(?=--|\\z)")};
    return patterns;
}
const std::array<Regex, 3>& drafting_patterns() {
    static const std::array<Regex, 3> patterns = {Regex("#\\s*Perspective[- ]taking\\s*\\n([\\s\\S]*?)(?=#|\\z)"),
                                                  Regex("#\\s*Draft brainstorming\\s*\\n([\\s\\S]*?)(?=#|\\z)"),
                                                  Regex("#\\s*Draft\\s*\\n([\\s\\S]*?)(?=--|\\z)")};
    return patterns;
}

constexpr std::array<std::string_view, 3> kRolePlayHeadings = {"# I'm thinking & feeling", "# They're thinking & feeling", "# My response"};
constexpr std::array<std::string_view, 3> kDraftingHeadings = {"# Perspective-taking", "# Draft brainstorming", "# Draft"};

std::array<std::string, 3> section_array(const Eqb3Sections& s) { return {s.first, s.second, s.third}; }

// ScenarioTask._format_parsed_response (the rubric's rendering).
std::string rubric_sections_text(const Eqb3Sections& sections, Eqb3Kind kind) {
    const auto& headings = kind == Eqb3Kind::Drafting ? kDraftingHeadings : kRolePlayHeadings;
    const auto texts = section_array(sections);
    std::string out;
    for (std::size_t i = 0; i < 3; ++i) {
        out += (i == 0 ? "" : "\n\n") + std::string(headings[i]) + "\n" + texts[i];
    }
    return out + "\n\n--";
}

std::string truncated(std::string_view text, std::size_t limit) {
    if (python_length(text) <= limit) return std::string(text);
    return std::string(python_prefix(text, limit)) + std::string(kTruncatedMark);
}

// elo_helpers.py truncate_parsed_sections + format_parsed_response (the pairwise rendering).
std::string pairwise_sections_text(const Eqb3Sections& sections, Eqb3Kind kind) {
    const bool drafting = kind == Eqb3Kind::Drafting;
    const auto& headings = drafting ? kDraftingHeadings : kRolePlayHeadings;
    const auto& limits = drafting ? kDraftingSectionChars : kRolePlaySectionChars;
    const auto texts = section_array(sections);
    std::string out;
    for (std::size_t i = 0; i < 3; ++i) {
        out += (i == 0 ? "" : "\n\n") + std::string(headings[i]) + "\n\n" + truncated(texts[i], limits[i]);
    }
    return out + "\n\n--";
}

// format_conversation_history (its word budget of 9,999,999 never binds).
std::string pairwise_history(const Eqb3Transcript& transcript) {
    const Eqb3Kind kind = transcript.scenario->kind;
    std::string out;
    for (std::size_t i = 0; i < transcript.conversation.size(); ++i) {
        const Eqb3Message& message = transcript.conversation[i];
        std::string content = message.content;
        std::string role = "User";
        if (message.role == "assistant") {
            role = "Assistant";
            if (kind == Eqb3Kind::RolePlay || kind == Eqb3Kind::Drafting) {
                content = pairwise_sections_text(eqbench3_parse_sections(content, kind), kind);
            } else {
                content = truncated(content, kind == Eqb3Kind::NoRolePlay ? kRawReplyChars : kAnalysisReplyChars);
            }
        }
        out += (i == 0 ? "" : "\n") + role + ":\n" + without_stars_and_hashes(content) + "\n---";
    }
    return out;
}

std::string read_data_file(const std::string& dir, const std::string& name, std::map<std::string, std::string>& fingerprints) {
    const std::string path = dir + "/" + name;
    std::string text = read_file_text(path, kMaxDataFileBytes);
    fingerprints[name] = net::sha256_hex(text);
    return text;
}

}  // namespace

Eqb3Kind eqbench3_kind(std::string_view id) {
    if (std::find(kNoRolePlayIds.begin(), kNoRolePlayIds.end(), id) != kNoRolePlayIds.end()) return Eqb3Kind::NoRolePlay;
    if (std::find(kDraftingIds.begin(), kDraftingIds.end(), id) != kDraftingIds.end()) return Eqb3Kind::Drafting;
    // ANALYSIS_SCENARIO_IDS: "401" .. "420".
    if (id.size() == 3 && id[0] == '4' && ((id[1] == '0' && id[2] >= '1' && id[2] <= '9') || (id[1] == '1' && id[2] >= '0' && id[2] <= '9') ||
                                           (id[1] == '2' && id[2] == '0'))) {
        return Eqb3Kind::Analysis;
    }
    return Eqb3Kind::RolePlay;
}

const char* eqbench3_kind_name(Eqb3Kind kind) {
    switch (kind) {
        case Eqb3Kind::RolePlay: return "role-play";
        case Eqb3Kind::NoRolePlay: return "no-role-play";
        case Eqb3Kind::Drafting: return "drafting";
        case Eqb3Kind::Analysis: return "analysis";
    }
    return "?";
}

Eqb3Scenarios parse_eqbench3_scenarios(std::string_view text, const std::string& source) {
    Eqb3Scenarios result;
    std::optional<Eqb3Scenario> current;
    std::string first_ignored;  // the first non-empty line of the current scenario outside any prompt
    std::size_t first_ignored_line = 0;
    std::vector<std::string> prompt_lines;
    bool in_prompt = false;

    const auto finish_prompt = [&] {
        if (prompt_lines.empty() || !current) return;
        std::string joined;
        for (std::size_t i = 0; i < prompt_lines.size(); ++i) joined += (i ? "\n" : "") + prompt_lines[i];
        prompt_lines.clear();
        const std::string_view stripped = python_strip(joined);
        if (!stripped.empty()) current->prompts.emplace_back(stripped);
    };
    const auto finish_scenario = [&] {
        finish_prompt();
        if (!current) return;
        for (const auto& kept : result.kept) {
            if (kept.id == current->id) fail("{}: line {}: scenario '{}' appears again (first at line {})", source, current->line, current->id, kept.line);
        }
        if (!current->prompts.empty()) {
            current->kind = eqbench3_kind(current->id);
            result.kept.push_back(std::move(*current));
        } else {
            std::string reason = "no `####### Prompt<N>` header";
            if (!first_ignored.empty()) reason += fmt::format(" (line {} reads `{}`)", first_ignored_line, first_ignored);
            result.skipped.push_back({current->id, current->line, std::move(reason)});
        }
        current.reset();
    };

    const auto lines = file_lines(text);
    for (std::size_t index = 0; index < lines.size(); ++index) {
        const std::string_view raw = lines[index];
        const std::string_view line = python_strip(raw);
        const std::size_t line_number = index + 1;
        // ^########\s*(\S+)
        if (line.starts_with("########")) {
            std::size_t at = 8;
            while (at < line.size() && is_python_space_byte(line[at])) ++at;
            if (at < line.size()) {
                finish_scenario();
                std::size_t end = at;
                while (end < line.size() && !is_python_space_byte(line[end])) ++end;
                current.emplace();
                current->id = std::string(line.substr(at, end - at));
                current->title = std::string(python_strip(line.substr(end)));
                current->line = line_number;
                first_ignored.clear();
                in_prompt = false;
                continue;
            }
        }
        // ^#######\s*Prompt(\d+)
        if (line.starts_with("#######")) {
            std::size_t at = 7;
            while (at < line.size() && is_python_space_byte(line[at])) ++at;
            if (line.substr(at).starts_with("Prompt") && at + 6 < line.size() && line[at + 6] >= '0' && line[at + 6] <= '9') {
                if (!current) continue;  // a prompt before any scenario: the harness skips it
                finish_prompt();
                in_prompt = true;
                continue;
            }
        }
        if (current && in_prompt) {
            prompt_lines.emplace_back(raw);
        } else if (current && !line.empty() && first_ignored.empty()) {
            first_ignored = std::string(line);
            first_ignored_line = line_number;
        }
    }
    finish_scenario();
    if (result.kept.empty()) fail("{}: no scenario with a `####### Prompt<N>` turn", source);
    return result;
}

std::map<std::string, std::string> parse_eqbench3_notes(std::string_view text) {
    std::map<std::string, std::string> notes;
    std::optional<std::string> id;
    std::vector<std::string_view> lines;
    const auto finish = [&] {
        if (!id || lines.empty()) return;
        std::string joined;
        for (std::size_t i = 0; i < lines.size(); ++i) joined += std::string(i ? "\n" : "") + std::string(lines[i]);
        notes[*id] = std::string(python_strip(joined));
        lines.clear();
    };
    for (const std::string_view line : file_lines(text)) {
        if (line.starts_with("# ")) {
            finish();
            // line.strip('# \n')
            std::size_t begin = 0;
            std::size_t end = line.size();
            while (begin < end && (line[begin] == '#' || line[begin] == ' ')) ++begin;
            while (end > begin && (line[end - 1] == '#' || line[end - 1] == ' ')) --end;
            id = std::string(line.substr(begin, end - begin));
        } else if (id) {
            lines.push_back(line);
        }
    }
    finish();
    return notes;
}

std::vector<std::string> parse_eqbench3_criteria(std::string_view text, const std::string& source) {
    std::vector<std::string> criteria;
    for (const std::string_view line : file_lines(text)) {
        const std::string_view stripped = python_strip(line);
        if (stripped.empty() || stripped.starts_with('#')) continue;
        criteria.emplace_back(stripped);
    }
    if (criteria.empty()) fail("{}: no criteria (one name per line expected)", source);
    return criteria;
}

const Eqb3Scenario* Eqb3Data::find(std::string_view id) const {
    for (const auto& scenario : scenarios.kept) {
        if (scenario.id == id) return &scenario;
    }
    return nullptr;
}

Eqb3Data load_eqbench3_data(const std::string& dir) {
    Eqb3Data data;
    data.dir = dir;
    auto& fp = data.fingerprints;
    const auto read = [&](const char* name) { return read_data_file(dir, name, fp); };
    const auto path = [&](const char* name) { return dir + "/" + name; };

    data.scenarios = parse_eqbench3_scenarios(read("scenario_prompts.txt"), path("scenario_prompts.txt"));
    data.master_prompt = read("scenario_master_prompt.txt");
    data.drafting_master_prompt = read("scenario_master_prompt_message_drafting.txt");
    data.analysis_master_prompt = read("scenario_master_prompt_analysis.txt");
    data.debrief_prompt = read("debrief_prompt.txt");
    data.rubric_criteria = parse_eqbench3_criteria(read("rubric_scoring_criteria.txt"), path("rubric_scoring_criteria.txt"));
    data.analysis_rubric_criteria =
        parse_eqbench3_criteria(read("rubric_scoring_criteria_analysis.txt"), path("rubric_scoring_criteria_analysis.txt"));
    data.rubric_prompt = read("rubric_scoring_prompt.txt");
    data.analysis_rubric_prompt = read("rubric_scoring_prompt_analysis.txt");
    data.pairwise_prompt = read("pairwise_prompt_eqbench3.txt");
    data.analysis_pairwise_prompt = read("pairwise_prompt_eqbench3_analysis.txt");
    data.notes = parse_eqbench3_notes(read("scenario_notes.txt"));

    if (python_strip(data.debrief_prompt).empty()) fail("{}: empty", path("debrief_prompt.txt"));
    // The harness formats these with str.format: check each renders (unknown fields, stray braces).
    const std::map<std::string, std::string_view> master_fields = {{"scenario_prompt", ""}};
    for (const auto& [text, name] : {std::pair{&data.master_prompt, "scenario_master_prompt.txt"},
                                     std::pair{&data.drafting_master_prompt, "scenario_master_prompt_message_drafting.txt"},
                                     std::pair{&data.analysis_master_prompt, "scenario_master_prompt_analysis.txt"}}) {
        require_placeholders(*text, path(name), {"scenario_prompt"});
        (void)python_format(*text, master_fields, path(name));
    }
    require_placeholders(data.rubric_prompt, path("rubric_scoring_prompt.txt"), {"transcript", "debrief", "output_format"});
    (void)python_format(data.rubric_prompt, {{"transcript", ""}, {"debrief", ""}, {"output_format", ""}}, path("rubric_scoring_prompt.txt"));
    require_placeholders(data.analysis_rubric_prompt, path("rubric_scoring_prompt_analysis.txt"), {"transcript", "output_format"});
    (void)python_format(data.analysis_rubric_prompt, {{"transcript", ""}, {"output_format", ""}}, path("rubric_scoring_prompt_analysis.txt"));
    require_placeholders(data.pairwise_prompt, path("pairwise_prompt_eqbench3.txt"),
                         {"conversation_history_A", "conversation_history_B", "debrief_A", "debrief_B"});
    require_placeholders(data.analysis_pairwise_prompt, path("pairwise_prompt_eqbench3_analysis.txt"),
                         {"transcript_being_analysed", "response_A", "response_B"});
    return data;
}

const std::string& eqbench3_master_prompt(const Eqb3Data& data, Eqb3Kind kind) {
    if (kind == Eqb3Kind::Analysis) return data.analysis_master_prompt;
    if (kind == Eqb3Kind::Drafting) return data.drafting_master_prompt;
    return data.master_prompt;
}

std::string eqbench3_turn_prompt(const Eqb3Data& data, const Eqb3Scenario& scenario, std::size_t turn) {
    const std::string& text = scenario.prompts.at(turn);
    if (scenario.kind == Eqb3Kind::NoRolePlay) return text;
    return python_format(eqbench3_master_prompt(data, scenario.kind), {{"scenario_prompt", text}}, data.dir + "/master prompt");
}

std::string eqbench3_strip_reasoning(std::string text) {
    for (const auto& [open, close] : {std::pair<std::string_view, std::string_view>{"<think>", "</think>"}, {"<reasoning>", "</reasoning>"}}) {
        if (text.find(open) == std::string::npos) continue;
        const std::size_t end = text.find(close);
        if (end == std::string::npos) continue;
        text = std::string(python_strip(std::string_view(text).substr(end + close.size())));
    }
    return text;
}

Eqb3Sections eqbench3_parse_sections(std::string_view reply, Eqb3Kind kind) {
    if (kind != Eqb3Kind::RolePlay && kind != Eqb3Kind::Drafting) return {};
    const auto& patterns = kind == Eqb3Kind::Drafting ? drafting_patterns() : role_play_patterns();
    return {patterns[0].first_group(reply), patterns[1].first_group(reply), patterns[2].first_group(reply)};
}

bool eqbench3_has_substantial_reply(const Eqb3Transcript& transcript) {
    return std::any_of(transcript.conversation.begin(), transcript.conversation.end(), [](const Eqb3Message& m) {
        return m.role == "assistant" && python_length(python_strip(m.content)) >= kEqBench3MinReplyChars;
    });
}

std::string eqbench3_rubric_output_format(const std::vector<std::string>& criteria) {
    nlohmann::ordered_json format = nlohmann::ordered_json::object();
    format["chain_of_thought_reasoning"] = "detailed chain of thought reasoning about the coming scoring decisions";
    for (const auto& criterion : criteria) format[criterion] = 0;
    // json.dumps(indent=2) writes ASCII with the same separators; then ': 0' -> ': 0-20'.
    return replace_all(format.dump(2, ' ', true), ": 0", ": 0-20");
}

std::string eqbench3_rubric_prompt(const Eqb3Data& data, const Eqb3Transcript& transcript) {
    const Eqb3Kind kind = transcript.scenario->kind;
    const bool analysis = kind == Eqb3Kind::Analysis;
    if (!analysis && !transcript.debrief) fail("scenario {}: the rubric needs the debrief, which is missing", transcript.scenario->id);
    std::string joined;
    for (std::size_t i = 0; i < transcript.conversation.size(); ++i) {
        const Eqb3Message& message = transcript.conversation[i];
        const bool user = message.role == "user";
        std::string content = message.content;
        if (!user && (kind == Eqb3Kind::RolePlay || kind == Eqb3Kind::Drafting)) {
            content = rubric_sections_text(eqbench3_parse_sections(content, kind), kind);
        }
        joined += (i == 0 ? "" : "---\n") + std::string(user ? "User" : "Assistant") + ":\n" + content + "\n";
    }
    const std::string output_format = eqbench3_rubric_output_format(analysis ? data.analysis_rubric_criteria : data.rubric_criteria);
    std::string prompt;
    if (analysis) {
        prompt = python_format(data.analysis_rubric_prompt, {{"transcript", joined}, {"output_format", output_format}},
                               data.dir + "/rubric_scoring_prompt_analysis.txt");
    } else {
        prompt = python_format(data.rubric_prompt, {{"transcript", joined}, {"debrief", *transcript.debrief}, {"output_format", output_format}},
                               data.dir + "/rubric_scoring_prompt.txt");
    }
    return without_stars_and_hashes(std::move(prompt));
}

std::string eqbench3_pairwise_prompt(const Eqb3Data& data, const Eqb3Transcript& a, const Eqb3Transcript& b) {
    const Eqb3Scenario& scenario = *a.scenario;
    if (b.scenario->id != scenario.id) fail("internal: pairwise prompt for different scenarios {} and {}", scenario.id, b.scenario->id);
    const bool analysis = scenario.kind == Eqb3Kind::Analysis;
    const auto debrief_text = [](const std::optional<std::string>& debrief) {
        if (!debrief || debrief->empty()) return std::string("[No Debrief Provided]");
        std::string text = without_stars_and_hashes(*debrief);
        if (python_length(text) > kDebriefChars) text = std::string(python_prefix(text, kDebriefChars)) + std::string(kTruncatedMark);
        return text;
    };
    // scenario_id.replace("scenario", "").split("_")[0]
    std::string note_id = replace_all(scenario.id, "scenario", "");
    note_id = note_id.substr(0, note_id.find('_'));
    const auto note = data.notes.find(note_id);
    const std::string notes = note == data.notes.end() ? "[No scenario notes available]" : note->second;

    std::string prompt = analysis ? data.analysis_pairwise_prompt : data.pairwise_prompt;
    const std::string& description = scenario.prompts.front();
    prompt = replace_all(std::move(prompt), "{scenario_description}", description);
    prompt = replace_all(std::move(prompt), "{scenario_notes}", notes);
    prompt = replace_all(std::move(prompt), "{conversation_history_A}", pairwise_history(a));
    prompt = replace_all(std::move(prompt), "{conversation_history_B}", pairwise_history(b));
    if (!analysis) {
        prompt = replace_all(std::move(prompt), "{debrief_A}", debrief_text(a.debrief));
        return replace_all(std::move(prompt), "{debrief_B}", debrief_text(b.debrief));
    }
    const auto first_reply = [](const Eqb3Transcript& t) {
        for (const auto& message : t.conversation) {
            if (message.role == "assistant") return truncated(without_stars_and_hashes(message.content), kAnalysisReplyChars);
        }
        return std::string();
    };
    prompt = replace_all(std::move(prompt), "{transcript_being_analysed}", python_strip(description));
    prompt = replace_all(std::move(prompt), "{response_A}", first_reply(a));
    return replace_all(std::move(prompt), "{response_B}", first_reply(b));
}

std::vector<std::string> eqbench3_split_ids(std::string_view list) {
    std::vector<std::string> ids;
    for (std::size_t at = 0; at <= list.size();) {
        const std::size_t end = std::min(list.find(',', at), list.size());
        const std::string_view id = python_strip(list.substr(at, end - at));
        if (!id.empty()) ids.emplace_back(id);
        at = end + 1;
    }
    return ids;
}

std::string_view python_prefix(std::string_view text, std::size_t count) {
    std::size_t pos = 0;
    for (std::size_t n = 0; n < count && pos < text.size(); ++n) pos += text::utf8_length_at(text, pos);
    return text.substr(0, pos);
}

}  // namespace kindred::eval
