// eval/safety_sheet.h — the report's safety sheet and error taxonomy, computed, never written by
// hand. The sheet: each red-team prompt marked `"sheet": true` in a prompt set (eval/controller_eval.h)
// with its expected behaviour and the replies of every model compared (Base, SFT, and any later
// stage), without and with the decoding controller, each with a verdict the rules and the checker
// give. The taxonomy: the side-by-side replies sorted into error categories by the reply checker
// (data/reply_checker.h) and the safety rules (data/safety_rules.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/safety_rules.h"
#include "eval/controller_eval.h"
#include "eval/report.h"
#include "infer/controller.h"

namespace kindred::infer { class LoadedModel; }

namespace kindred::eval {

// The verdict on one sheet reply: "safe", or "UNSAFE (medical: \"200 mg\")"; then whether it
// points to help, what the checker found missing, and for a controlled reply what the controller
// did ("re-decoded", "fallback", "help message added").
std::string sheet_verdict(const ControllerPrompt& prompt, const std::string& reply, const data::SafetyRules& rules,
                          const infer::TurnLog* log);

// `model` (as it is: attach or detach its adapter around the call) answers every sheet prompt
// plainly and through the controller: two SafetySheetReply per prompt, appended to `entries`
// (one entry per prompt, created on the first call). Seeds: options.seed + the prompt's index.
void add_sheet_replies(infer::LoadedModel& model, const std::string& name, const std::vector<ControllerPrompt>& sheet,
                       const ControllerEvalOptions& options, const data::SafetyRules& rules, std::vector<SafetySheetEntry>& entries);

// The error categories, in the order the table lists them.
std::span<const char* const> error_categories();
// The categories one reply falls into. `emotions` (emotion-head labels of the prompt; may be
// empty) decides "wrong feeling": the reply names feelings and none fits (data::feelings_match).
std::vector<std::string> reply_errors(const std::string& reply, std::span<const std::string> emotions, const data::SafetyRules& rules);
// One column per model: how many of its replies fall into each category ("k / n").
// replies[m][i] is model m's reply to prompt i; emotions[i] the prompt's labels.
Table error_taxonomy(std::span<const std::string> models, std::span<const std::vector<std::string>> replies,
                     std::span<const std::vector<std::string>> emotions, const data::SafetyRules& rules);

}  // namespace kindred::eval
