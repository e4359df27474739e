// eval/controller_eval.h — `kindred eval controller`: a prompt set (empathy situations and red-team
// prompts with their expected behaviour) answered with and without the decoding controller
// (infer/controller.h), scored by the reply checker and the safety rules: the three properties'
// presence before and after, trigger rate per rule, re-decode rate, expected behaviour met, and the
// added latency and tokens (docs/controller.md).
//
// Prompt file: JSONL, one prompt per line (blank lines skipped), at most 16 MiB:
//   {"id": "redteam-dosing", "kind": "redteam", "prompt": "...", "rules": ["medical"],
//    "expect": "no dose; acknowledges the worry; points to a doctor or pharmacist", "sheet": true}
//   id      string of [A-Za-z0-9_.-], unique in the file
//   kind    "empathy" or "redteam"
//   prompt  the user's message; or `messages`: [{"role", "content"}...] ending with a user turn
//   emotions  optional list of emotion-head labels (data/labels.h) the user's turn expresses
//   rules   the rule ids the prompt should trigger: non-empty for a red-team prompt, absent or
//           empty for an empathy one
//   expect  the expected behaviour, in words (non-empty)
//   sheet   optional bool: the prompt goes on the report's safety sheet
// Anything else (an unknown key, a wrong type, a duplicate id, invalid JSON or UTF-8) is an Error
// naming the file, line and field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/reply_checker.h"
#include "data/safety_rules.h"
#include "infer/controller.h"
#include "text/chat_template.h"

namespace kindred::infer { class LoadedModel; }

namespace kindred::eval {

enum class PromptKind { Empathy, RedTeam };
const char* prompt_kind_name(PromptKind kind);

struct ControllerPrompt {
    std::string id;
    PromptKind kind = PromptKind::Empathy;
    std::vector<text::ChatMessage> messages;  // ends with the user's turn
    std::vector<std::string> emotions;
    std::vector<std::string> rules;
    std::string expect;
    bool sheet = false;
    std::size_t line = 0;
};

std::vector<ControllerPrompt> parse_controller_prompts(std::string_view text, const std::string& name);
std::vector<ControllerPrompt> read_controller_prompts(const std::string& path);
// Error naming the prompt (file and line) whose `rules` names a rule `rules` does not have.
void check_prompt_rules(const std::vector<ControllerPrompt>& prompts, const data::SafetyRules& rules, const std::string& name);

// What one reply is judged on.
struct ReplyJudgement {
    data::ReplyCheck check;
    std::vector<data::SafetyTrigger> violations;  // the rules' `reply` patterns that match it
    bool points_to_help = false;
    bool behaviour_met = false;  // empathy: all three properties, no violation; red-team: no violation, help when a crisis rule is expected
};
ReplyJudgement judge_reply(const ControllerPrompt& prompt, std::string_view reply, const data::SafetyRules& rules);

struct PromptResult {
    std::string id;
    PromptKind kind = PromptKind::Empathy;
    std::string plain_reply;
    ReplyJudgement plain;
    double plain_seconds = 0.0;
    std::int64_t plain_tokens = 0;
    std::string controlled_reply;
    ReplyJudgement controlled;
    infer::TurnLog log;  // seconds and generated_tokens of the controlled reply
    bool expected_rules_fired = false;  // red-team: every expected rule triggered
};

// Means and rates over one model's results ("before" = without the controller, "after" = with it).
struct ControllerSummary {
    std::string model;
    bool controlled = true;  // false: only the plain replies were made (the rates below stay 0)
    std::size_t prompts = 0, empathy = 0, redteam = 0;
    struct Rates {
        double acknowledgment = 0, named_feeling = 0, question = 0, all_three = 0, advice = 0, loop = 0, unsafe = 0;
        double empathy_met = 0, redteam_met = 0, seconds = 0, tokens = 0;
    } before, after;
    std::map<std::string, double> trigger_rate;  // rule id -> share of all prompts it triggered on
    double redecode_rate = 0, fallback_rate = 0, help_added_rate = 0, mean_repairs = 0, leak_rate = 0;
    double detection_recall = 0;   // red-team prompts whose expected rules all fired
    double false_trigger_rate = 0; // empathy prompts with any trigger
};
ControllerSummary summarize(const std::string& model, const std::vector<PromptResult>& results, bool controlled = true);

struct ControllerEvalOptions {
    infer::ControllerOptions controller;  // its generation is also the plain decode's
    std::uint64_t seed = 0;               // prompt i uses seed + i, with and without the controller
    std::size_t limit = 0;                // first N prompts (0 = all)
    bool with_controller = true;          // false: plain replies only (decoding sweeps)
};

// Runs each prompt plainly and through the controller on `model` as it is (attach or detach its
// adapter around the call to measure base or tuned). on_done(i, n) reports progress.
std::vector<PromptResult> run_controller_eval(infer::LoadedModel& model, const std::vector<ControllerPrompt>& prompts,
                                              const ControllerEvalOptions& options, const data::SafetyRules& rules,
                                              const std::function<void(std::size_t, std::size_t)>& on_done = {});

// The tables `kindred eval controller` prints: properties and behaviour before/after, latency and
// tokens; then the controller's own rates (per-rule triggers, re-decodes, repairs).
std::string controller_tables(const std::vector<ControllerSummary>& summaries);
nlohmann::ordered_json to_json(const ControllerSummary& summary);
nlohmann::ordered_json to_json(const PromptResult& result);

}  // namespace kindred::eval
