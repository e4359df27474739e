// eval/eqbench3.h — EQ-Bench 3's data and the texts its harness builds from them
// (github EQ-bench/eqbench3 at 3c21bcc: core/benchmark.py, core/conversation.py,
// core/elo_helpers.py, core/pairwise_judging.py, utils/constants.py), reproduced behaviour for
// behaviour so that a judge sees byte-identical prompts:
//   scenarios   parse_scenario_prompts: `######## <id> ...` opens a scenario, `####### Prompt<N>`
//               a user turn; a scenario without any Prompt header is dropped (409 writes
//               `####### 1`, so 45 of the file's 46 are kept) — kept here too, and reported;
//   turns       the master prompt (role-play, message drafting or analysis) wraps each turn's
//               text, except in the "no role-play" scenarios; replies of role-play and drafting
//               scenarios are cut into their three sections by the harness's regexes;
//   debrief     one more user turn after role-play and drafting (not analysis);
//   rubric      the transcript as the rubric judge reads it (`User:`/`Assistant:` blocks joined by
//               `---`, sections re-rendered), the output-format JSON, then every `*` and `#` of
//               the prompt removed;
//   pairwise    both respondents' transcripts (sections truncated to the harness's character
//               limits, `*`/`#` removed), their debriefs and the scenario notes, substituted
//               into the pairwise template in the harness's order.
// Generation settings per stage are constants here (kEqBench3...). Every file is untrusted:
// errors name the file and line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kindred::eval {

// The scenario families of utils/constants.py (NO_RP, MESSAGE_DRAFTING, ANALYSIS; the rest role-play).
enum class Eqb3Kind { RolePlay, NoRolePlay, Drafting, Analysis };
Eqb3Kind eqbench3_kind(std::string_view scenario_id);
const char* eqbench3_kind_name(Eqb3Kind kind);  // "role-play", "no-role-play", "drafting", "analysis"

struct Eqb3Scenario {
    std::string id;
    std::string title;  // the rest of the header line ("| Work Dilemma | Lunchroom Theft Scapegoat")
    std::size_t line = 0;
    std::vector<std::string> prompts;  // the canned user turns, in file order
    Eqb3Kind kind = Eqb3Kind::RolePlay;
};

struct Eqb3SkippedScenario {
    std::string id;
    std::size_t line = 0;  // its header
    std::string reason;    // e.g. "no `####### Prompt<N>` header (line 1203 reads `####### 1`)"
};

struct Eqb3Scenarios {
    std::vector<Eqb3Scenario> kept;  // file order
    std::vector<Eqb3SkippedScenario> skipped;
};

// parse_scenario_prompts on the text of scenario_prompts.txt. The harness silently lets a later
// scenario with the same id replace an earlier one; here that is an Error naming both lines.
Eqb3Scenarios parse_eqbench3_scenarios(std::string_view text, const std::string& source);

// load_scenario_notes: `# <id>` lines open a note (the id is the line stripped of `#`, space
// and newline at both ends), the following lines are its text.
std::map<std::string, std::string> parse_eqbench3_notes(std::string_view text);

// Non-empty lines not starting with `#`, stripped: the rubric criteria files.
std::vector<std::string> parse_eqbench3_criteria(std::string_view text, const std::string& source);

// Everything the harness reads from its data/ folder.
struct Eqb3Data {
    std::string dir;
    Eqb3Scenarios scenarios;
    std::string master_prompt;           // scenario_master_prompt.txt
    std::string drafting_master_prompt;  // scenario_master_prompt_message_drafting.txt
    std::string analysis_master_prompt;  // scenario_master_prompt_analysis.txt
    std::string debrief_prompt;          // debrief_prompt.txt
    std::vector<std::string> rubric_criteria;           // rubric_scoring_criteria.txt
    std::vector<std::string> analysis_rubric_criteria;  // rubric_scoring_criteria_analysis.txt
    std::string rubric_prompt;           // rubric_scoring_prompt.txt
    std::string analysis_rubric_prompt;  // rubric_scoring_prompt_analysis.txt
    std::string pairwise_prompt;         // pairwise_prompt_eqbench3.txt
    std::string analysis_pairwise_prompt;  // pairwise_prompt_eqbench3_analysis.txt
    std::map<std::string, std::string> notes;  // scenario_notes.txt
    // file name -> sha256 hex of its bytes, stored with a run so a resume or a comparison can
    // tell when the data changed under it.
    std::map<std::string, std::string> fingerprints;

    const Eqb3Scenario* find(std::string_view id) const;
};

// Reads and checks every file (placeholders each template needs, non-empty criteria).
Eqb3Data load_eqbench3_data(const std::string& dir);

// Generation settings of the harness (conversation.py run_scenario / run_debrief; benchmark.py and
// pairwise_judging.py for the judge). min_p is sent to the tested model's turns only.
inline constexpr double kEqBench3TurnTemperature = 0.7;
inline constexpr double kEqBench3TurnMinP = 0.1;
inline constexpr double kEqBench3DebriefTemperature = 0.5;
inline constexpr std::int64_t kEqBench3ReplyMaxTokens = 12000;
inline constexpr double kEqBench3JudgeTemperature = 0.0;
inline constexpr std::int64_t kEqBench3JudgeMaxTokens = 8000;
// A task counts (for rubric and pairwise) only when one of its assistant turns has at least
// this many characters after stripping (ALLOW_INCOMPLETE_RESPONSES' baseline, _MIN_RAW_LEN).
inline constexpr std::size_t kEqBench3MinReplyChars = 100;

struct Eqb3Message {
    std::string role;  // "user" | "assistant"
    std::string content;
};

// The user message of turn `turn` (the master prompt around the scenario text, or the text
// alone for no-role-play scenarios).
std::string eqbench3_turn_prompt(const Eqb3Data& data, const Eqb3Scenario& scenario, std::size_t turn);
// The master prompt of a scenario's kind.
const std::string& eqbench3_master_prompt(const Eqb3Data& data, Eqb3Kind kind);

// What the harness does to every reply it receives (utils/api.py): when both <think> and
// </think> occur, only what follows the first </think> is kept, stripped; the same for
// <reasoning>...</reasoning>. An empty reply stays empty.
std::string eqbench3_strip_reasoning(std::string text);

// The three sections of a role-play or drafting reply (conversation.py _parse_response);
// "raw" is the reply itself. Sections not found are empty.
struct Eqb3Sections {
    std::string first;   // thinking_feeling | perspective_taking
    std::string second;  // their_thinking_feeling | draft_brainstorming
    std::string third;   // response | draft
};
Eqb3Sections eqbench3_parse_sections(std::string_view reply, Eqb3Kind kind);

// One finished (or partly finished) task: what a run directory holds for a scenario.
struct Eqb3Transcript {
    const Eqb3Scenario* scenario = nullptr;
    std::vector<Eqb3Message> conversation;  // user/assistant pairs (debrief excluded)
    std::optional<std::string> debrief;     // role-play and drafting only
};

// True when some assistant message has >= kEqBench3MinReplyChars characters after stripping.
bool eqbench3_has_substantial_reply(const Eqb3Transcript& transcript);

// The rubric judge's prompt (prepare_rubric_prompt_text without truncation, as the harness runs
// it, then `*` and `#` removed). Needs the debrief for role-play and drafting (Error otherwise).
std::string eqbench3_rubric_prompt(const Eqb3Data& data, const Eqb3Transcript& transcript);
// The output-format block: {"chain_of_thought_reasoning": "...", criterion: 0-20, ...}.
std::string eqbench3_rubric_output_format(const std::vector<std::string>& criteria);

// The pairwise judge's prompt with `a` as respondent A0493 and `b` as A0488 (same scenario).
std::string eqbench3_pairwise_prompt(const Eqb3Data& data, const Eqb3Transcript& a, const Eqb3Transcript& b);

// "1, 208,401" -> {"1", "208", "401"} (the --scenarios flags).
std::vector<std::string> eqbench3_split_ids(std::string_view list);

// The first `count` characters (code points) of `text`, as Python's text[:count].
std::string_view python_prefix(std::string_view text, std::size_t count);

}  // namespace kindred::eval
