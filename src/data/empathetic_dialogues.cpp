#include "data/empathetic_dialogues.h"

#include <charconv>
#include <filesystem>
#include <map>
#include <optional>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.h"
#include "data/records.h"

namespace kindred::data {
namespace {

constexpr std::string_view kHeader = "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags";

struct Conversation {
    std::string conv_id;
    std::size_t first_line = 0;
    std::string context;
    std::string situation;
    std::vector<std::string> utterances;
    std::map<std::string, std::vector<std::string>> candidates;  // utterance_idx -> retrieval candidates
    bool poisoned = false;
};

std::optional<long> parse_index(std::string_view field) {
    long value = 0;
    const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (error != std::errc() || end != field.data() + field.size() || value < 1) return std::nullopt;
    return value;
}

class Reader {
public:
    Reader(const std::string& path, const std::string& split, const LoadOptions& options, SourceStats& stats,
           const ExampleSink& sink)
        : path_(path), split_(split), options_(options), stats_(stats), sink_(sink), diagnostics_(options.on_error, stats) {}

    void run() {
        LineReader lines(path_);
        std::string line;
        bool has_header = false;
        try {
            has_header = lines.next(line);
        } catch (const RecordError&) {
            // an overlong first line is no header either
        }
        if (!has_header || line != kHeader) fail("{}:1: not an EmpatheticDialogues file: the header is not '{}'", path_, kHeader);
        for (;;) {
            try {
                if (!lines.next(line)) break;
                if (line.empty()) continue;
                add_row(line, lines.line_number());
            } catch (const RecordError& error) {
                bad_row(lines.line_number(), error.what(), current_.conv_id);
            }
        }
        flush();
    }

private:
    void add_row(const std::string& line, std::size_t line_number) {
        const auto fields = split_commas(line);
        if (!is_valid_utf8(line)) {
            bad_row(line_number, "invalid UTF-8", std::string(fields[0]));
            return;
        }
        if (fields.size() != 8 && fields.size() != 9) {
            bad_row(line_number, fmt::format("expected 8 fields (9 with candidates), found {}", fields.size()),
                    std::string(fields[0]));
            return;
        }
        const std::string conv_id(fields[0]);
        const auto reject = [&](const std::string& reason) { bad_row(line_number, reason, conv_id); };
        if (conv_id.empty()) return reject("empty conv_id");
        const auto index = parse_index(fields[1]);
        if (!index) return reject(fmt::format("utterance_idx '{}' is not a positive integer", fields[1]));
        const std::string context(fields[2]);
        if (!map_label(empathetic_dialogues_labels(), context)) return reject(fmt::format("unknown emotion label '{}'", context));
        std::string utterance = decode_ed_text(fields[5]);
        if (utterance.empty()) return reject("empty utterance");

        if (conv_id != current_.conv_id) {
            flush();
            if (finished_.contains(conv_id)) return reject(fmt::format("conversation {} appears again after other rows", conv_id));
            current_ = Conversation{conv_id, line_number, context, decode_ed_text(fields[3]), {}, {}, false};
        }
        if (current_.poisoned) return;
        const auto expected = static_cast<long>(current_.utterances.size()) + 1;
        if (*index != expected) return reject(fmt::format("utterance_idx {} out of order (expected {})", *index, expected));
        if (context != current_.context) return reject(fmt::format("context '{}' differs from the conversation's '{}'", context, current_.context));
        current_.utterances.push_back(std::move(utterance));
        // ED's retrieval evaluation data: kept with the ids, never shown to the model.
        if (fields.size() == 9 && !fields[8].empty()) current_.candidates[std::string(fields[1])] = decode_ed_candidates(fields[8]);
    }

    // Drops the conversation the bad row belongs to: a dialogue missing a turn would teach the
    // model a reply to something never said.
    void bad_row(std::size_t line_number, const std::string& reason, const std::string& conv_id) {
        if (conv_id != current_.conv_id) {
            flush();
            current_ = Conversation{conv_id, line_number, {}, {}, {}, {}, false};
        }
        current_.poisoned = true;
        diagnostics_.report(path_, line_number, reason, fmt::format("conversation {}", conv_id));
    }

    void flush() {
        if (current_.conv_id.empty() && current_.utterances.empty()) return;
        finished_.insert(current_.conv_id);
        if (!current_.poisoned && !current_.utterances.empty()) emit();
        current_ = Conversation{};
    }

    void emit() {
        Example example;
        example.id = "ed:" + current_.conv_id;
        example.source = "empathetic_dialogues";
        example.split = split_;
        example.messages.push_back(make_message(Role::System, options_.system_prompt));
        bool has_target = false;
        for (std::size_t i = 0; i < current_.utterances.size(); ++i) {
            const bool listener = i % 2 == 1;  // utterance_idx = i + 1; even idx = listener
            example.messages.push_back(make_message(listener ? Role::Assistant : Role::User, std::move(current_.utterances[i]), listener));
            has_target = has_target || listener;
        }
        // A speaker-only conversation still says how its speaker felt.
        example.task = has_target ? Task::Chat : Task::Emotion;
        set_emotions(example, empathetic_dialogues_labels(), {current_.context});
        if (!current_.situation.empty()) example.situation = current_.situation;
        example.original = {{"file", std::filesystem::path(path_).filename().string()},
                            {"line", current_.first_line},
                            {"conv_id", current_.conv_id}};
        if (!current_.candidates.empty()) example.original["candidates"] = current_.candidates;
        auto& counts = stats_.splits[split_];
        ++counts.conversations;
        counts.utterances += current_.utterances.size();
        stats_.count_example(example);
        sink_(std::move(example));
    }

    std::string path_;
    std::string split_;
    const LoadOptions& options_;
    SourceStats& stats_;
    const ExampleSink& sink_;
    Diagnostics diagnostics_;
    Conversation current_;
    std::unordered_set<std::string> finished_;
};

}  // namespace

void load_empathetic_dialogues_file(const std::string& path, const std::string& split, const LoadOptions& options,
                                    SourceStats& stats, const ExampleSink& sink) {
    stats.files.push_back(path);
    Reader(path, split, options, stats, sink).run();
}

void load_empathetic_dialogues(const std::string& dir, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink) {
    stats.source = "empathetic_dialogues";
    stats.license = kEmpatheticDialoguesLicense;
    for (const auto& [file, split] : {std::pair{"train.csv", "train"}, {"valid.csv", "dev"}, {"test.csv", "test"}}) {
        const auto path = (std::filesystem::path(dir) / file).string();
        if (!std::filesystem::is_regular_file(path)) fail("{}: EmpatheticDialogues file missing (expected train.csv, valid.csv, test.csv in {})", path, dir);
        load_empathetic_dialogues_file(path, split, options, stats, sink);
    }
}

}  // namespace kindred::data
