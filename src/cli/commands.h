// cli/commands.h — one thin file per subcommand: each adds its CLI11 subcommand to the app.
// Handlers parse flags, call the library and print; they hold no logic a test would want.
// Bad input surfaces as kindred::Error, printed once by main() with a non-zero exit.
#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

namespace kindred::cli {

// Input texts (--file) are read whole; beyond this size they are surely not what was meant.
inline constexpr std::uintmax_t kMaxInputTextBytes = 1ull << 30;

void add_inspect_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_eval_emotion_command(CLI::App& eval);  // `eval emotion`, added by add_eval_command
void add_data_command(CLI::App& app);
void add_data_fetch_command(CLI::App& data);  // `data fetch`, added by add_data_command
void add_train_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_tune_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_train_dpo_command(CLI::App& train);  // `train dpo`, under add_train_command's `train`
void add_pairs_command(CLI::App& app);
void add_ablate_command(CLI::App& app);
void add_serve_command(CLI::App& app);
// `eval eqbench3` (cmd_eval_eqbench3.cpp), added under `eval` by add_eval_command.
void add_eqbench3_command(CLI::App& eval);
// `kindred eval controller`, added under the `eval` subcommand (cmd_eval_controller.cpp).
void add_eval_controller_command(CLI::App& eval);
// `kindred eval judge-emotions`, added under `eval` (cmd_eval_judge_emotions.cpp).
void add_eval_judge_emotions_command(CLI::App& eval);

}  // namespace kindred::cli
