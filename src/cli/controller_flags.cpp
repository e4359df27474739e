#include "cli/controller_flags.h"

#include <fstream>

#include "core/error.h"
#include "infer/loaded_model.h"
#include "infer/styled_prompt.h"

namespace kindred::cli {

void add_controller_flags(CLI::App& command, ControllerFlags& flags, bool with_switch) {
    command.add_option("--style", flags.style,
                       "Style tokens the model was trained with, e.g. \"<tone:warm><persona:best_friend>\" (docs/controller.md)");
    if (with_switch) {
        command.add_flag("--controller", flags.enabled,
                         "Two-step decoding controller: hidden reflection, safety re-decode, checker repairs (docs/controller.md)");
    }
    command.add_option("--rules", flags.rules, "Safety rules file for the controller (default: the built-in configs/safety.rules)")
        ->check(CLI::ExistingFile);
    command.add_flag("--no-reflection", flags.no_reflection, "Controller: skip the hidden reflection step");
    command.add_flag("--no-heads", flags.no_heads, "Controller: do not read the adapter's emotion/strategy heads");
    command.add_flag("--no-safety", flags.no_safety, "Controller: skip the safety rules");
    command.add_option("--repairs", flags.repairs, "Controller: most re-decodes for a reply the checker finds incomplete")
        ->capture_default_str();
    command.add_option("--memory", flags.memory, "Controller: on = feeling summary of earlier turns from turn 2, off = none")
        ->capture_default_str();
    command.add_option("--controller-log", flags.log,
                       "Controller: append each turn's log, hidden reflection included, as one JSON line to this file (operator use)");
}

void recommended_unless_given(const CLI::App& command, GenerationFlags& flags) {
    const infer::SamplingParams recommended = infer::recommended_sampling(flags.sampling.seed);
    auto& s = flags.sampling;
    if (command.count("--temperature") == 0) s.temperature = recommended.temperature;
    if (command.count("--top-k") == 0) s.top_k = recommended.top_k;
    if (command.count("--top-p") == 0) s.top_p = recommended.top_p;
    if (command.count("--min-p") == 0) s.min_p = recommended.min_p;
    if (command.count("--repeat-penalty") == 0) s.repeat_penalty = recommended.repeat_penalty;
    if (command.count("--repeat-last-n") == 0) s.repeat_last_n = recommended.repeat_last_n;
    if (command.count("--presence-penalty") == 0) s.presence_penalty = recommended.presence_penalty;
    if (command.count("--frequency-penalty") == 0) s.frequency_penalty = recommended.frequency_penalty;
}

ControllerSetup controller_setup(const ControllerFlags& flags, const infer::LoadedModel& model, const GenerationFlags& generation) {
    if (flags.repairs < 0) fail("--repairs must be >= 0, got {}", flags.repairs);
    if (flags.memory != "on" && flags.memory != "off") fail("--memory must be 'on' or 'off', got '{}'", flags.memory);
    ControllerSetup setup;
    if (!flags.rules.empty()) {
        setup.own_rules = std::make_unique<data::SafetyRules>(data::SafetyRules::read(flags.rules));
        setup.rules = setup.own_rules.get();
    } else {
        setup.rules = &data::SafetyRules::builtin();
    }
    infer::ControllerOptions& options = setup.options;
    options.reflection = !flags.no_reflection;
    options.heads = !flags.no_heads;
    options.safety = !flags.no_safety;
    options.max_repairs = flags.repairs;
    options.memory = flags.memory == "on";
    if (!flags.style.empty()) options.style = infer::checked_style(model, flags.style);
    options.generation.sampling = generation.sampling;
    options.generation.max_tokens = generation.max_tokens;
    options.generation.stop_tokens = model.stop_tokens();
    options.generation.stop_strings = model.stop_strings();
    return setup;
}

void append_controller_log(const ControllerFlags& flags, const infer::TurnLog& log) {
    if (flags.log.empty()) return;
    std::ofstream out(flags.log, std::ios::app);
    out << infer::to_json(log, true).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    if (!out) fail("{}: cannot append the controller log", flags.log);
}

}  // namespace kindred::cli
