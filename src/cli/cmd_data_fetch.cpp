// kindred data fetch NAME... [--dir DIR] [--base-url URL]: the official releases of the datasets
// and benchmark files into DIR (data/fetch.h, docs/data.md "Fetching"), one progress bar per file,
// then what reads each dataset.
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/progress.h"
#include "data/fetch.h"

namespace kindred::cli {
namespace {

struct FetchFlags {
    std::vector<std::string> names;
    std::string dir;
    std::string base_url;
};

void run_fetch(const FetchFlags& flags) {
    std::vector<const data::RemoteDataset*> datasets;
    for (const auto& name : flags.names) {
        if (name == "all") {
            datasets.clear();
            for (const auto& dataset : data::dataset_catalog()) datasets.push_back(&dataset);
            break;
        }
        datasets.push_back(&data::find_dataset(name));
    }
    data::FetchOptions options;
    options.dir = flags.dir.empty() ? kindred_home() : flags.dir;
    const char* mirror = std::getenv("KINDRED_DATA_MIRROR");
    options.base_url = !flags.base_url.empty() ? flags.base_url : (mirror != nullptr ? mirror : "");
    if (!options.base_url.empty()) fmt::print(stderr, "fetching from the mirror {}\n", options.base_url);
    // One bar per file, opened at its first bytes (when the server has said how many there are).
    std::optional<Progress> bar;
    std::string bar_file;
    options.progress = [&](const data::RemoteFile& file, std::int64_t done, std::int64_t total) {
        if (bar_file != file.path) {
            if (bar) bar->finish();
            ProgressOptions progress_options;
            progress_options.label = file.path;
            progress_options.unit = "B";
            bar.emplace(total, progress_options);
            bar_file = file.path;
        }
        bar->update(done, {}, static_cast<double>(done));
    };
    options.log = [&](const std::string& line) {
        if (bar) {
            bar->finish();
            bar.reset();
            bar_file.clear();
        }
        fmt::print(stderr, "{}\n", line);
    };
    for (const auto* dataset : datasets) {
        data::fetch_dataset(*dataset, options);
        fmt::print("{} ({}, {}): in {}; read it with: {}\n", dataset->name, dataset->title, dataset->license, options.dir,
                   dataset->prepare);
    }
}

}  // namespace

void add_data_fetch_command(CLI::App& data) {
    auto flags = std::make_shared<FetchFlags>();
    std::string names;
    for (const auto& dataset : data::dataset_catalog()) names += (names.empty() ? "" : ", ") + dataset.name;
    auto* fetch = data.add_subcommand(
        "fetch", "Download the official dataset and benchmark releases, pinned by sha256, resumable, offline once cached");
    fetch->add_option("names", flags->names, fmt::format("Datasets: {}, or all", names))->required();
    fetch->add_option("--dir", flags->dir, "Folder to fetch into (default: $KINDRED_HOME, where the demo looks for EQ-Bench)");
    fetch->add_option("--base-url", flags->base_url,
                      "A mirror serving the same layout as --dir (default: $KINDRED_DATA_MIRROR, else the official URLs)");
    fetch->callback([flags] { run_fetch(*flags); });
}

}  // namespace kindred::cli
