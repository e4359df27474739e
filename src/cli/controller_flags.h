// cli/controller_flags.h — the flags `chat`, `generate` and `eval controller` share for style tokens
// and the decoding controller (docs/controller.md), and turning them into infer::ControllerOptions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/generation_flags.h"
#include "data/safety_rules.h"
#include "infer/controller.h"

namespace kindred::infer { class LoadedModel; }

namespace kindred::cli {

struct ControllerFlags {
    std::string style;         // --style; empty = none
    bool enabled = false;      // --controller (eval controller always runs it)
    std::string rules;         // --rules FILE; empty = the built-in set
    bool no_reflection = false;
    bool no_heads = false;
    bool no_safety = false;
    int repairs = 2;
    std::string memory = "on";
    std::string log;           // --controller-log FILE (JSONL, hidden fields included)
};

// --style; with `with_switch` also --controller (chat, generate); then --rules, --no-reflection,
// --no-heads, --no-safety, --repairs, --memory and --controller-log.
void add_controller_flags(CLI::App& command, ControllerFlags& flags, bool with_switch);

// The sampling flags the user did not give take infer::recommended_sampling()'s values (the seed
// stays): what --controller and the evaluations decode with.
void recommended_unless_given(const CLI::App& command, GenerationFlags& flags);

// What a command needs to run the controller on `model`: the rules (built-in unless --rules) and
// the options (style checked against the model, the command's generation settings).
struct ControllerSetup {
    std::unique_ptr<data::SafetyRules> own_rules;  // set when --rules was given
    const data::SafetyRules* rules = nullptr;
    infer::ControllerOptions options;
};
ControllerSetup controller_setup(const ControllerFlags& flags, const infer::LoadedModel& model, const GenerationFlags& generation);

// Appends one JSON line (infer::to_json(log, true)) to --controller-log when it is set.
void append_controller_log(const ControllerFlags& flags, const infer::TurnLog& log);

}  // namespace kindred::cli
