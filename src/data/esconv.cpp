#include "data/esconv.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "data/records.h"
#include "data/split.h"

namespace kindred::data {
namespace {

using nlohmann::json;

enum class Layout { Original, HuggingFace };

std::string string_field(const json& object, const char* key, const std::string& where) {
    const auto found = object.find(key);
    if (found == object.end()) throw RecordError(fmt::format("{}missing '{}'", where, key));
    if (!found->is_string()) throw RecordError(fmt::format("{}'{}' is not a string", where, key));
    return found->get<std::string>();
}

std::string optional_string(const json& object, const char* key) {
    const auto found = object.find(key);
    return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

std::string normalized_strategy(const json& value, const std::string& where) {
    if (!value.is_string()) throw RecordError(fmt::format("{}strategy is not a string", where));
    const auto strategy = normalize_strategy(value.get<std::string>());
    if (!strategy) throw RecordError(fmt::format("{}unknown strategy '{}'", where, value.get<std::string>()));
    return std::string(*strategy);
}

int feedback_score(const json& value, const std::string& where) {
    // The release writes scores as strings ("1".."5"); a number is accepted as the same fact.
    std::int64_t score = 0;
    if (value.is_string() && value.get<std::string>().size() == 1) score = value.get<std::string>()[0] - '0';
    if (value.is_number_integer()) score = value.get<std::int64_t>();  // wide, so 2^32+1 cannot wrap to 1
    if (score < 1 || score > 5) throw RecordError(fmt::format("{}feedback {} is not 1..5", where, value.dump()));
    return static_cast<int>(score);
}

struct Turn {
    Role role;
    std::string text;
    std::optional<std::string> strategy;
    std::optional<int> feedback;
};

Turn read_turn(const json& item, Layout layout, const std::string& where) {
    if (!item.is_object()) throw RecordError(where + "turn is not an object");
    const auto speaker = string_field(item, "speaker", where);
    const bool original = layout == Layout::Original;
    Turn turn{Role::User, {}, {}, {}};
    if (speaker == (original ? "seeker" : "usr")) {
        turn.role = Role::User;
    } else if (speaker == (original ? "supporter" : "sys")) {
        turn.role = Role::Assistant;
    } else {
        throw RecordError(fmt::format("{}unknown speaker '{}' (expected {})", where, speaker,
                                      original ? "seeker or supporter" : "usr or sys"));
    }
    turn.text = trim(string_field(item, original ? "content" : "text", where));
    if (turn.text.empty()) throw RecordError(where + "empty utterance");
    if (original) {
        const auto annotation = item.find("annotation");
        if (annotation != item.end()) {
            if (!annotation->is_object()) throw RecordError(where + "annotation is not an object");
            for (const auto& [key, value] : annotation->items()) {
                if (key == "strategy" && turn.role == Role::Assistant) {
                    turn.strategy = normalized_strategy(value, where);
                } else if (key == "feedback" && turn.role == Role::User) {
                    turn.feedback = feedback_score(value, where);
                } else {
                    throw RecordError(fmt::format("{}unexpected annotation '{}' on a {} turn", where, key, speaker));
                }
            }
        }
    } else if (const auto strategy = item.find("strategy"); strategy != item.end()) {
        if (turn.role != Role::Assistant) throw RecordError(where + "strategy on a usr turn");
        turn.strategy = normalized_strategy(*strategy, where);
    }
    return turn;
}

class Loader {
public:
    Loader(const std::string& path, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink)
        : path_(path), file_(std::filesystem::path(path).filename().string()), options_(options), stats_(stats),
          sink_(sink), diagnostics_(options.on_error, stats) {}

    void run() {
        const MappedFile map(path_);
        const std::string_view text(reinterpret_cast<const char*>(map.data()), map.size());
        const auto first = text.find_first_not_of(" \t\r\n");
        if (first != std::string_view::npos && text[first] == '[') return read_list(text, first);
        if (first != std::string_view::npos && text[first] == '{') return read_lines();
        fail("{}: not ESConv: expected a JSON list (ESConv.json) or JSON lines (thu-coai/esconv)", path_);
    }

private:
    // Cuts the top-level list into elements without building it: strings are skipped with their
    // escapes, brackets counted, newlines counted so each element knows its first line.
    void read_list(std::string_view text, std::size_t at) {
        std::size_t line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
        ++at;  // '['
        std::size_t index = 0;
        const auto skip_space = [&] {
            while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == '\r' || text[at] == '\n')) {
                if (text[at] == '\n') ++line;
                ++at;
            }
        };
        skip_space();
        if (at < text.size() && text[at] == ']') return finish_list(text, at + 1, line);
        for (;;) {
            skip_space();
            const std::size_t start = at;
            const std::size_t start_line = line;
            int depth = 0;
            bool in_string = false;
            bool complete = false;
            for (; at < text.size(); ++at) {
                const char c = text[at];
                if (c == '\n') ++line;
                if (in_string) {
                    if (c == '\\') {
                        ++at;
                    } else if (c == '"') {
                        in_string = false;
                    }
                    continue;
                }
                if (c == '"') {
                    in_string = true;
                } else if (c == '{' || c == '[') {
                    ++depth;
                } else if (c == '}' || c == ']') {
                    if (depth == 0) {
                        complete = true;
                        break;
                    }
                    --depth;
                } else if (c == ',' && depth == 0) {
                    complete = true;
                    break;
                }
            }
            if (!complete) {
                diagnostics_.report(path_, start_line, "unterminated JSON: the list ends inside a conversation", "the rest of the file");
                return;
            }
            convert_text(text.substr(start, at - start), start_line, index++);
            if (text[at] == ']') return finish_list(text, at + 1, line);
            if (text[at] != ',') {
                diagnostics_.report(path_, line, "unbalanced '}' in the JSON list", "the rest of the file");
                return;
            }
            ++at;
        }
    }

    void finish_list(std::string_view text, std::size_t at, std::size_t line) {
        const auto rest = text.find_first_not_of(" \t\r\n", at);
        if (rest != std::string_view::npos) {
            line += static_cast<std::size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(at), text.begin() + static_cast<std::ptrdiff_t>(rest), '\n'));
            diagnostics_.report(path_, line, "text after the end of the JSON list", "the rest of the file");
        }
    }

    void read_lines() {
        LineReader lines(path_);
        std::string line;
        std::size_t index = 0;
        for (;;) {
            try {
                if (!lines.next(line)) break;
            } catch (const RecordError& error) {
                diagnostics_.report(path_, lines.line_number(), error.what(), "conversation");
                ++index;
                continue;
            }
            if (trim(line).empty()) continue;
            convert_text(line, lines.line_number(), index++);
        }
    }

    void convert_text(std::string_view element, std::size_t line, std::size_t index) {
        const auto what = fmt::format("conversation {}", index);
        json conversation;
        try {
            conversation = json::parse(element.begin(), element.end());
        } catch (const json::parse_error& error) {
            const auto upto = std::min<std::size_t>(error.byte > 0 ? error.byte - 1 : 0, element.size());
            const auto error_line = line + static_cast<std::size_t>(std::count(element.begin(), element.begin() + static_cast<std::ptrdiff_t>(upto), '\n'));
            diagnostics_.report(path_, error_line, fmt::format("{}: bad JSON: {}", what, error.what()), what);
            return;
        }
        try {
            convert(conversation, line, index);
        } catch (const RecordError& error) {
            diagnostics_.report(path_, line, fmt::format("{}: {}", what, error.what()), what);
        }
    }

    void convert(const json& conversation, std::size_t line, std::size_t index) {
        if (!conversation.is_object()) throw RecordError("not a JSON object");
        const Layout layout = conversation.contains("dialog") && conversation["dialog"].is_array() && !conversation["dialog"].empty()
                                          && conversation["dialog"][0].is_object() && conversation["dialog"][0].contains("text")
                                  ? Layout::HuggingFace
                                  : Layout::Original;
        const auto emotion = string_field(conversation, "emotion_type", "");
        if (!map_label(esconv_labels(), emotion)) throw RecordError(fmt::format("unknown emotion_type '{}'", emotion));
        const auto dialog = conversation.find("dialog");
        if (dialog == conversation.end() || !dialog->is_array()) throw RecordError("'dialog' is missing or not a list");
        if (dialog->empty()) throw RecordError("'dialog' is empty");
        const auto situation = trim(optional_string(conversation, "situation"));

        Example example;
        example.source = "esconv";
        example.messages.push_back(make_message(Role::System, options_.system_prompt));
        std::string identity = emotion + '\x1f' + situation;
        std::size_t utterances = 0;
        for (std::size_t i = 0; i < dialog->size(); ++i) {
            auto turn = read_turn((*dialog)[i], layout, fmt::format("dialog[{}]: ", i));
            identity += '\x1e' + turn.text;
            ++utterances;
            auto& last = example.messages.back();
            if (last.role == turn.role) {
                last.content += '\n' + turn.text;  // one speaker, several sends: one message
            } else {
                example.messages.push_back(make_message(turn.role, std::move(turn.text), turn.role == Role::Assistant));
            }
            if (turn.strategy) example.messages.back().strategies.push_back(*turn.strategy);
            if (turn.feedback) example.messages.back().feedback.push_back(*turn.feedback);
        }
        const bool has_target = std::any_of(example.messages.begin(), example.messages.end(), [](const Message& m) { return m.target; });
        example.task = has_target ? Task::Chat : Task::Emotion;
        example.id = fmt::format("esconv:{:016x}", fnv1a64(identity));
        example.split = hash_split(example.id);
        set_emotions(example, esconv_labels(), {emotion});
        if (!situation.empty()) example.situation = situation;
        example.original = {{"file", file_}, {"line", line}, {"index", index}};
        for (const char* key : {"problem_type", "experience_type"}) {
            if (const auto value = optional_string(conversation, key); !value.empty()) example.original[key] = value;
        }
        auto& counts = stats_.splits[example.split];
        ++counts.conversations;
        counts.utterances += utterances;
        stats_.count_example(example);
        sink_(std::move(example));
    }

    std::string path_;
    std::string file_;
    const LoadOptions& options_;
    SourceStats& stats_;
    const ExampleSink& sink_;
    Diagnostics diagnostics_;
};

}  // namespace

void load_esconv(const std::string& path, const LoadOptions& options, SourceStats& stats, const ExampleSink& sink) {
    stats.source = "esconv";
    stats.license = kEsconvLicense;
    stats.files.push_back(path);
    Loader(path, options, stats, sink).run();
}

}  // namespace kindred::data
