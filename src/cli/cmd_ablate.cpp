// kindred ablate --config RECIPE.yaml [key=value ...]: the ablation matrix of train/ablate.h (full,
// no emotion head, no strategy head, no safety KL, no DPO), its expected time said first, its table
// printed at the end and written with charts under <output.dir>/<name>/.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/ranks.h"
#include "core/config.h"
#include "core/error.h"
#include "eval/report.h"
#include "train/ablate.h"

namespace kindred::cli {
namespace {

struct AblateFlags {
    std::string config;
    std::vector<std::string> overrides;
    int threads = 0;
};

void run_ablate(const AblateFlags& flags) {
    apply_threads_flag(flags.threads);
    Config config = Config::load(flags.config);
    config.apply_overrides(flags.overrides);
    const train::AblationSettings settings = train::read_ablation_settings(config);
    const auto rows = train::run_ablation(settings, [](const std::string& line) { fmt::print(stderr, "ablate: {}\n", line); });
    fmt::print("{}", eval::table_markdown(train::ablation_table(rows)));
    fmt::print("written to {}/{}/ (ablation.md, ablation.json, ablation_dev_nll.svg, ablation_rewards.svg)\n",
               settings.output_dir, settings.name);
}

}  // namespace

void add_ablate_command(CLI::App& app) {
    auto flags = std::make_shared<AblateFlags>();
    auto* ablate = app.add_subcommand("ablate", "Train and compare the ablations: full, no emotion head, no strategy head, "
                                                "no safety KL, no DPO");
    ablate->add_option("--config", flags->config, "Ablation recipe YAML (see configs/ablate.yaml)")->required();
    ablate->add_option("--threads", flags->threads, "CPU threads (0 = KINDRED_THREADS or every core)")->capture_default_str();
    ablate->add_option("overrides", flags->overrides, "key=value recipe overrides (e.g. variants=[full,no_dpo])");
    ablate->callback([flags] { run_ablate(*flags); });
}

}  // namespace kindred::cli
