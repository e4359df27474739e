#include "data/prepare.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "data/empathetic_dialogues.h"
#include "data/esconv.h"
#include "data/goemotions.h"
#include "data/mixture.h"
#include "data/records.h"

namespace kindred::data {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kProgressEvery = 100000;  // a line every second or two on this machine

std::ofstream open_output(const fs::path& path) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create: {}", path.string(), std::strerror(errno));
    return out;
}

void check_written(std::ostream& out, const fs::path& path) {
    out.flush();
    if (!out) fail("{}: write failed", path.string());
}

// The train examples of one source, spilled to disk in load order with their byte offsets.
struct Spill {
    fs::path path;
    std::ofstream out;
    std::vector<std::uint64_t> offsets;
    std::uint64_t bytes = 0;
};

// Everything is written under a ".partial" name and renamed only when the whole run succeeded, so
// a failed run never leaves new shards beside an old card; scratch files go either way.
class ScratchFiles {
public:
    ~ScratchFiles() {
        for (const auto& path : paths_) {
            std::error_code ignored;
            fs::remove(path, ignored);
        }
    }
    fs::path add(fs::path path) {
        paths_.push_back(path);
        return path;
    }
    // Renames each "<name>.partial" to "<name>".
    void commit(const std::vector<fs::path>& partials) {
        for (const auto& partial : partials) {
            std::error_code error;
            auto final_path = partial;
            final_path.replace_extension();
            fs::rename(partial, final_path, error);
            if (error) fail("{}: cannot rename to {}: {}", partial.string(), final_path.string(), error.message());
        }
    }

private:
    std::vector<fs::path> paths_;
};

void report_progress(const PrepareOptions& options, const std::string& line) {
    if (options.progress) options.progress(line);
}

}  // namespace

PrepareReport prepare_corpus(const PrepareOptions& options) {
    if (!options.empathetic_dialogues && !options.esconv && !options.goemotions) {
        fail("no data source given: pass at least one of --ed, --esconv, --goemotions");
    }
    if (!(options.alpha > 0.0 && options.alpha <= 1.0)) fail("mixture alpha {} is outside (0, 1]", options.alpha);
    if (options.out_dir.empty()) fail("no output directory given");
    if (!is_valid_utf8(options.load.system_prompt)) fail("the system prompt is not valid UTF-8");
    const fs::path out_dir(options.out_dir);
    std::error_code error;
    fs::create_directories(out_dir, error);
    if (error) fail("{}: cannot create directory: {}", out_dir.string(), error.message());

    PrepareReport report;
    report.alpha = options.alpha;
    report.seed = options.seed;
    report.style = options.style;
    report.on_error = options.load.on_error;

    ScratchFiles scratch;
    const fs::path dev_path = scratch.add(out_dir / "dev.jsonl.partial");
    const fs::path test_path = scratch.add(out_dir / "test.jsonl.partial");
    auto dev = open_output(dev_path);
    auto test = open_output(test_path);
    std::vector<Spill> spills;
    spills.reserve(3);  // the sink lambdas hold references into it

    const auto load = [&](const std::string& name, const auto& loader, const std::string& input) {
        report.sources.emplace_back();
        auto& stats = report.sources.back();
        stats.source = name;
        auto& spill = spills.emplace_back();
        spill.path = scratch.add(out_dir / fmt::format(".train-{}.spill", name));
        spill.out = open_output(spill.path);
        std::size_t seen = 0;
        const ExampleSink sink = [&](Example&& example) {
            if (options.style) apply_style(example, *options.style);
            const std::string line = to_json(example).dump() + '\n';
            if (example.split == "train") {
                spill.offsets.push_back(spill.bytes);
                spill.bytes += line.size();
                spill.out << line;
            } else {
                (example.split == "dev" ? dev : test) << line;
                ++report.shard_lines[example.split];
            }
            if (++seen % kProgressEvery == 0) report_progress(options, fmt::format("data: {}: {} examples", name, seen));
        };
        report_progress(options, fmt::format("data: reading {} from {}", name, input));
        loader(input, options.load, stats, sink);
        check_written(spill.out, spill.path);
        spill.out.close();
        report_progress(options, fmt::format("data: {}: {} examples, {} dropped records", name, seen, stats.dropped.size()));
        for (const auto& path : stats.missing) report_progress(options, fmt::format("data: {}: {} not found, its split stays empty", name, path));
    };
    if (options.empathetic_dialogues) load("empathetic_dialogues", load_empathetic_dialogues, *options.empathetic_dialogues);
    if (options.esconv) load("esconv", load_esconv, *options.esconv);
    if (options.goemotions) load("goemotions", load_goemotions, *options.goemotions);
    check_written(dev, dev_path);
    check_written(test, test_path);
    report.shard_lines.try_emplace("dev", 0);
    report.shard_lines.try_emplace("test", 0);

    // Train: i.i.d. draws of a source by p_i, each source walked through seeded permutations.
    std::vector<std::size_t> counts;
    std::size_t total = 0;
    for (const auto& spill : spills) {
        counts.push_back(spill.offsets.size());
        total += spill.offsets.size();
    }
    Mixture mixture(counts, options.alpha, options.seed);
    report.draws = options.train_examples.value_or(total);
    std::vector<std::ifstream> inputs;
    std::vector<std::optional<SourceCycle>> cycles;
    std::vector<std::vector<bool>> used;
    for (std::size_t i = 0; i < spills.size(); ++i) {
        report.mixture.push_back({report.sources[i].source, counts[i], mixture.probabilities()[i], 0, 0, 0});
        inputs.emplace_back(spills[i].path, std::ios::binary);
        if (!inputs.back()) fail("{}: cannot reopen spill file", spills[i].path.string());
        if (counts[i] > 0) cycles.emplace_back(std::in_place, counts[i], options.seed, i);
        else cycles.emplace_back();
        used.emplace_back(counts[i], false);
    }
    const fs::path train_path = scratch.add(out_dir / "train.jsonl.partial");
    auto train = open_output(train_path);
    std::string line;
    for (std::size_t draw = 0; draw < report.draws; ++draw) {
        const auto source = mixture.next_source();
        const auto index = cycles[source]->next();
        auto& input = inputs[source];
        input.seekg(static_cast<std::streamoff>(spills[source].offsets[index]));
        if (!std::getline(input, line)) fail("{}: spill file changed while reading", spills[source].path.string());
        train << line << '\n';
        auto& entry = report.mixture[source];
        ++entry.draws;
        if (!used[source][index]) {
            used[source][index] = true;
            ++entry.unique;
        }
        if ((draw + 1) % kProgressEvery == 0) report_progress(options, fmt::format("data: mixing train {}/{}", draw + 1, report.draws));
    }
    check_written(train, train_path);
    report.shard_lines["train"] = report.draws;
    for (std::size_t i = 0; i < spills.size(); ++i) {
        if (cycles[i]) report.mixture[i].passes = cycles[i]->passes_started();
    }

    const auto card_path = scratch.add(out_dir / "data_card.json.partial");
    auto card = open_output(card_path);
    card << data_card_json(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    check_written(card, card_path);
    const auto markdown_path = scratch.add(out_dir / "data_card.md.partial");
    auto markdown = open_output(markdown_path);
    markdown << data_card_markdown(report);
    check_written(markdown, markdown_path);
    dev.close();
    test.close();
    train.close();
    card.close();
    markdown.close();
    scratch.commit({dev_path, test_path, train_path, card_path, markdown_path});
    return report;
}

nlohmann::json data_card_json(const PrepareReport& report) {
    using nlohmann::json;
    json sources = json::object();
    for (const auto& stats : report.sources) {
        json conversations = json::object(), utterances = json::object(), examples = json::object();
        for (const char* split : {"train", "dev", "test"}) {
            const auto found = stats.splits.find(split);
            const SplitCounts counts = found == stats.splits.end() ? SplitCounts{} : found->second;
            conversations[split] = counts.conversations;
            utterances[split] = counts.utterances;
            examples[split] = counts.examples;
        }
        json dropped = json::array();
        for (const auto& drop : stats.dropped) dropped.push_back({{"file", drop.file}, {"line", drop.line}, {"reason", drop.reason}});
        sources[stats.source] = {
            {"files", stats.files},
            {"license", stats.license},
            {"conversations", conversations},
            {"utterances", utterances},
            {"examples", examples},
            {"labels", stats.labels},
            {"emotion_labels", stats.emotions},
            {"strategies", stats.strategies},
            {"dropped", dropped},
            {"missing_files", stats.missing},
        };
    }
    json mixture_sources = json::object();
    for (const auto& entry : report.mixture) {
        mixture_sources[entry.source] = {
            {"train_examples", entry.examples},
            {"probability", entry.probability},
            {"draws", entry.draws},
            {"realised", report.draws == 0 ? 0.0 : static_cast<double>(entry.draws) / static_cast<double>(report.draws)},
            {"unique_examples", entry.unique},
            {"passes", entry.passes},
        };
    }
    json head = json::array();
    for (const auto& label : emotion_labels()) head.push_back({{"label", label.name}, {"valence", label.va.valence}, {"arousal", label.va.arousal}});
    return {
        {"schema_version", 1},
        {"sources", sources},
        {"mixture", {{"alpha", report.alpha}, {"seed", report.seed}, {"draws", report.draws}, {"sources", mixture_sources}}},
        {"shards", report.shard_lines},
        {"on_error", report.on_error == ErrorPolicy::Fail ? "fail" : "skip"},
        {"style_tokens", report.style ? json{{"text", report.style->text}, {"placement", style_placement_name(report.style->placement)}} : json(nullptr)},
        {"emotion_head", head},
    };
}

std::string data_card_markdown(const PrepareReport& report) {
    std::string out = "# Data card\n\nWritten by `kindred data prepare`; `data_card.json` holds the same facts. ";
    out += "Schema, label spaces and the mixture are explained in docs/data.md.\n\n## Shards\n\n| shard | examples |\n| --- | ---: |\n";
    for (const auto& [shard, lines] : report.shard_lines) out += fmt::format("| {}.jsonl | {} |\n", shard, lines);
    out += fmt::format("\n## Train mixture\n\np_i = n_i^α / Σ n_j^α with α = {}, seed {}, {} draws (no epochs: exhausted sources restart "
                       "with a fresh permutation).\n\n| source | n_i | p_i | draws | realised | unique | passes |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
                       report.alpha, report.seed, report.draws);
    for (const auto& entry : report.mixture) {
        const double realised = report.draws == 0 ? 0.0 : static_cast<double>(entry.draws) / static_cast<double>(report.draws);
        out += fmt::format("| {} | {} | {:.4f} | {} | {:.4f} | {} | {} |\n", entry.source, entry.examples, entry.probability,
                           entry.draws, realised, entry.unique, entry.passes);
    }
    for (const auto& stats : report.sources) {
        out += fmt::format("\n## {}\n\nLicense: {}. Files: {}.\n\n| split | conversations | utterances | examples |\n| --- | ---: | ---: | ---: |\n",
                           stats.source, stats.license, fmt::join(stats.files, ", "));
        for (const char* split : {"train", "dev", "test"}) {
            const auto found = stats.splits.find(split);
            const SplitCounts counts = found == stats.splits.end() ? SplitCounts{} : found->second;
            out += fmt::format("| {} | {} | {} | {} |\n", split, counts.conversations, counts.utterances, counts.examples);
        }
        out += "\nSource labels: ";
        std::vector<std::string> parts;
        for (const auto& [label, count] : stats.labels) parts.push_back(fmt::format("{} {}", label, count));
        out += parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", "));
        parts.clear();
        out += ".\n\nEmotion-head labels: ";
        for (const auto& [label, count] : stats.emotions) parts.push_back(fmt::format("{} {}", label, count));
        out += parts.empty() ? "none" : fmt::format("{}", fmt::join(parts, ", "));
        out += ".\n";
        if (!stats.strategies.empty()) {
            parts.clear();
            for (const auto& [strategy, count] : stats.strategies) parts.push_back(fmt::format("{} {}", strategy, count));
            out += fmt::format("\nStrategies (supporter turns): {}.\n", fmt::join(parts, ", "));
        }
        if (!stats.missing.empty()) out += fmt::format("\nNot found (split left empty): {}.\n", fmt::join(stats.missing, ", "));
        out += fmt::format("\nDropped records: {}.\n", stats.dropped.size());
        for (const auto& drop : stats.dropped) out += fmt::format("- {}:{}: {}\n", drop.file, drop.line, drop.reason);
    }
    return out;
}

}  // namespace kindred::data
