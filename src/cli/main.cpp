// kindred — the command-line entry point. Every failure becomes one line on stderr and exit 1.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/verbose.h"
#include "core/error.h"
#include "kernels/cpu_paths.h"

int main(int argc, char** argv) {
    CLI::App app{"Kindred: fine-tune open-weights LLMs into empathetic best-friend chatbots, natively."};
    app.require_subcommand(1);
    app.set_version_flag("--version", "kindred 0.1.0");
    // Global, and accepted after the subcommand too: subcommands created from here on inherit
    // fallthrough, passing options they do not know up to this one.
    app.add_flag_callback(
        "--verbose",
        [] {
            kindred::cli::verbose() = true;
            fmt::print(stderr, "kindred: cpu: {}\n", kindred::kernels::describe_cpu_paths());
        },
        "print the CPU's instruction sets and the kernels chosen for them to stderr");
    app.fallthrough();
    kindred::cli::add_inspect_command(app);
    kindred::cli::add_tokenize_command(app);
    kindred::cli::add_generate_command(app);
    kindred::cli::add_chat_command(app);
    kindred::cli::add_score_command(app);
    kindred::cli::add_eval_command(app);
    kindred::cli::add_data_command(app);
    kindred::cli::add_train_command(app);
    kindred::cli::add_export_command(app);
    kindred::cli::add_tune_command(app);
    kindred::cli::add_demo_command(app);
    kindred::cli::add_pairs_command(app);
    kindred::cli::add_ablate_command(app);
    kindred::cli::add_serve_command(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        return app.exit(error);
    } catch (const kindred::Error& error) {
        fmt::print(stderr, "kindred: error: {}\n", error.what());
        return 1;
    } catch (const std::exception& error) {
        fmt::print(stderr, "kindred: internal error: {}\n", error.what());
        return 2;
    }
    return 0;
}
