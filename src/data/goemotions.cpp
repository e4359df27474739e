#include "data/goemotions.h"

#include <charconv>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "data/records.h"

namespace kindred::data {
namespace {

namespace fs = std::filesystem;

// emotions.txt, when present, is the authority on what the ids mean; a different list or order
// would silently relabel every example, so it is checked rather than trusted or ignored.
void check_emotions_file(const std::string& path) {
    LineReader lines(path);
    std::string line;
    std::size_t id = 0;
    const auto expected = goemotions_labels();
    for (;;) {
        try {
            if (!lines.next(line)) break;
        } catch (const RecordError& error) {
            fail("{}:{}: {}", path, lines.line_number(), error.what());
        }
        const auto name = trim(line);
        if (name.empty()) continue;
        if (id >= expected.size() || name != expected[id].source_label) {
            fail("{}:{}: label '{}' where GoEmotions id {} should be '{}'", path, lines.line_number(), name, id,
                 id < expected.size() ? expected[id].source_label : std::string_view("(nothing: 28 labels only)"));
        }
        ++id;
    }
    if (id != expected.size()) fail("{}: lists {} labels, GoEmotions has {}", path, id, expected.size());
}

std::vector<std::string> parse_label_ids(const std::string& field) {
    std::vector<std::string> labels;
    const auto names = goemotions_labels();
    std::size_t start = 0;
    for (;;) {
        const auto comma = field.find(',', start);
        const auto token = std::string_view(field).substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        std::size_t id = 0;
        const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), id);
        if (token.empty() || error != std::errc() || end != token.data() + token.size()) {
            throw RecordError(fmt::format("label id '{}' is not a number", token));
        }
        if (id >= names.size()) throw RecordError(fmt::format("unknown label id {} (GoEmotions ids are 0..{})", id, names.size() - 1));
        labels.emplace_back(names[id].source_label);
        if (comma == std::string::npos) return labels;
        start = comma + 1;
    }
}

}  // namespace

void load_goemotions_file(const std::string& path, const std::string& split, const LoadOptions& options,
                          SourceStats& stats, const ExampleSink& sink) {
    stats.files.push_back(path);
    Diagnostics diagnostics(options.on_error, stats);
    TsvReader reader(path);
    const auto file = fs::path(path).filename().string();
    std::vector<std::string> fields;
    for (;;) {
        try {
            if (!reader.next(fields)) break;
            if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
            if (fields.size() != 3) throw RecordError(fmt::format("expected 3 tab-separated fields, found {}", fields.size()));
            for (const auto& field : fields) {
                if (!is_valid_utf8(field)) throw RecordError("invalid UTF-8");
            }
            auto text = trim(fields[0]);
            if (text.empty()) throw RecordError("empty text");
            const auto comment_id = trim(fields[2]);
            if (comment_id.empty()) throw RecordError("empty comment id");
            const auto labels = parse_label_ids(fields[1]);

            Example example;
            example.id = "goemotions:" + comment_id;
            example.source = "goemotions";
            example.split = split;
            example.task = Task::Emotion;
            example.messages.push_back(make_message(Role::System, options.system_prompt));
            example.messages.push_back(make_message(Role::User, std::move(text)));
            set_emotions(example, goemotions_labels(), labels);
            example.original = {{"file", file}, {"line", reader.record_line()}, {"comment_id", comment_id}};
            auto& counts = stats.splits[split];
            ++counts.conversations;
            ++counts.utterances;
            stats.count_example(example);
            sink(std::move(example));
        } catch (const RecordError& error) {
            diagnostics.report(path, reader.record_line(), error.what(), "record");
        }
    }
}

void load_goemotions(const std::string& dir, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink) {
    stats.source = "goemotions";
    stats.license = kGoEmotionsLicense;
    fs::path base(dir);
    if (!fs::is_regular_file(base / "train.tsv") && fs::is_regular_file(base / "data" / "train.tsv")) base /= "data";
    if (fs::is_regular_file(base / "emotions.txt")) check_emotions_file((base / "emotions.txt").string());
    for (const auto& [name, split] : {std::pair{"train.tsv", "train"}, {"dev.tsv", "dev"}, {"test.tsv", "test"}}) {
        const auto path = (base / name).string();
        // The test split is optional: a benchmark copy may withhold it (../shared has train and dev).
        if (split == std::string_view("test") && !fs::exists(path)) {
            stats.missing.push_back(path);
            continue;
        }
        if (!fs::is_regular_file(path)) fail("{}: GoEmotions file missing (expected train.tsv, dev.tsv and optionally test.tsv in {})", path, dir);
        load_goemotions_file(path, split, options, stats, sink);
    }
}

}  // namespace kindred::data
