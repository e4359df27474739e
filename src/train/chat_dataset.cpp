#include "train/chat_dataset.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"

namespace kindred::train {
namespace {

// A chat line nests message -> field at most; a little slack for the example schema's extras.
constexpr int kLineJsonDepth = 8;

bool known_role(std::string_view role) {
    return role == "system" || role == "developer" || role == "user" || role == "assistant";
}

const nlohmann::json* optional_field(const nlohmann::json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace

bool parse_chat_line(std::string_view line, const std::string& file, std::size_t line_number, ChatExample& out) {
    const std::string where = fmt::format("{} line {}", file, line_number);
    const nlohmann::json root = parse_json(line, where, kLineJsonDepth);
    if (!root.is_object()) fail("{}: expected a JSON object with 'messages'", where);
    if (const auto* task = optional_field(root, "task")) {
        if (!task->is_string() || (*task != "chat" && *task != "emotion"))
            fail("{}: task: expected \"chat\" or \"emotion\"", where);
        if (*task == "emotion") return false;
    }
    const auto messages = root.find("messages");
    if (messages == root.end()) fail("{}: missing 'messages'", where);
    if (!messages->is_array() || messages->empty()) fail("{}: messages: expected a non-empty array", where);

    out = ChatExample{};
    out.line = line_number;
    for (std::size_t i = 0; i < messages->size(); ++i) {
        const auto& item = (*messages)[i];
        const std::string field = fmt::format("{}: messages[{}]", where, i);
        if (!item.is_object()) fail("{}: expected an object", field);
        const auto role = item.find("role");
        if (role == item.end() || !role->is_string()) fail("{}.role: missing or not a string", field);
        const auto& role_name = role->get_ref<const std::string&>();
        if (!known_role(role_name))
            fail("{}.role: unknown role '{}' (expected system, developer, user or assistant)", field, role_name);
        const auto content = item.find("content");
        if (content == item.end() || !content->is_string()) fail("{}.content: missing or not a string", field);
        if (content->get_ref<const std::string&>().empty()) fail("{}.content: empty", field);

        text::ChatMessage message{role_name, content->get<std::string>(), {}};
        if (const auto* thinking = optional_field(item, "thinking")) {
            if (!thinking->is_string()) fail("{}.thinking: expected a string", field);
            message.thinking = thinking->get<std::string>();
        }
        const bool assistant = role_name == "assistant";
        bool target = assistant;  // plain chat JSONL: every assistant turn is trained
        if (const auto* flag = optional_field(item, "target")) {
            if (!flag->is_boolean()) fail("{}.target: expected true or false", field);
            if (!assistant && flag->get<bool>()) fail("{}.target: only assistant turns can be targets", field);
            target = flag->get<bool>();
        }
        std::size_t prefix = 0;
        if (const auto* chars = optional_field(item, "prefix_chars")) {
            if (!chars->is_number_unsigned()) fail("{}.prefix_chars: expected a non-negative integer", field);
            if (!assistant) fail("{}.prefix_chars: only assistant turns carry a style prefix", field);
            const auto value = chars->get<std::uint64_t>();
            if (value > message.content.size())
                fail("{}.prefix_chars: {} is past the end of the content ({} bytes)", field, value, message.content.size());
            prefix = static_cast<std::size_t>(value);
        }
        out.messages.push_back(std::move(message));
        out.target.push_back(target);
        out.prefix_bytes.push_back(prefix);
    }
    return true;
}

void for_each_chat_example(const std::string& path, ChatDatasetStats& stats,
                           const std::function<void(ChatExample&&)>& sink) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open the chat dataset", path);
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        ++stats.lines;
        ChatExample example;
        if (!parse_chat_line(line, path, number, example)) {
            ++stats.no_targets;
            continue;
        }
        sink(std::move(example));
    }
    if (in.bad()) fail("{}: read error after line {}", path, number);
}

TokenizedExample tokenize_example(const ChatExample& example, const text::Tokenizer& tokenizer,
                                  const text::ChatTemplate& chat, const std::string& file) {
    const std::string where = fmt::format("{} line {}", file, example.line);
    text::RenderedChat rendered;
    try {
        rendered = chat.render(example.messages, /*add_generation_prompt=*/false);
    } catch (const Error& error) {
        fail("{}: {}", where, error.what());
    }

    // Narrow each assistant span to what this example trains: target turns only, style prefix out.
    std::vector<std::pair<std::size_t, std::size_t>> trained;
    std::size_t span = 0;
    for (std::size_t i = 0; i < example.messages.size(); ++i) {
        if (example.messages[i].role != "assistant") continue;
        if (span >= rendered.assistant_spans.size())
            fail("{}: the {} template rendered fewer assistant spans than assistant turns", where, chat.name());
        auto [begin, end] = rendered.assistant_spans[span++];
        if (!example.target[i]) continue;
        if (const auto prefix = example.prefix_bytes[i]; prefix > 0) {
            const std::string_view style = std::string_view(example.messages[i].content).substr(0, prefix);
            const auto at = rendered.text.find(style, begin);
            if (at == std::string::npos || at + prefix > end)
                fail("{}: messages[{}]: the style prefix is not inside the rendered assistant turn", where, i);
            // The space that separates the tags from the reply merges into the reply's first token
            // (" Hello"); starting the trained part at that space keeps the token whole and trained
            // instead of straddling the edge and being left out.
            std::size_t kept = prefix;
            while (kept > 0 && (style[kept - 1] == ' ' || style[kept - 1] == '\n' || style[kept - 1] == '\t')) --kept;
            begin = at + kept;
        }
        trained.emplace_back(begin, end);
    }
    if (span != rendered.assistant_spans.size())
        fail("{}: the {} template rendered more assistant spans than assistant turns", where, chat.name());
    rendered.assistant_spans = std::move(trained);

    const text::Encoding encoding = tokenizer.encode_with_spans(rendered.text, /*parse_special=*/true);
    if (encoding.dropped_bytes > 0)
        fail("{}: {} byte(s) have no token in the vocabulary (invalid or control characters)", where,
             encoding.dropped_bytes);
    const auto mask = text::assistant_token_mask(encoding, rendered);

    TokenizedExample out;
    out.line = example.line;
    out.tokens = encoding.ids;
    out.targets.assign(out.tokens.size(), kIgnoreTarget);
    for (std::size_t t = 0; t + 1 < out.tokens.size(); ++t) {
        if (mask[t + 1] == 0) continue;
        out.targets[t] = out.tokens[t + 1];
        ++out.target_count;
    }
    return out;
}

ChatDataset load_chat_dataset(const std::string& path, const text::Tokenizer& tokenizer, const text::ChatTemplate& chat,
                              const ChatDatasetOptions& options) {
    if (options.context_length == 0) fail("{}: the model's context length is unknown (0)", path);
    if (options.max_seq_len == 0 || options.max_seq_len > options.context_length)
        fail("{}: max_seq_len {} must be in [1, {}] (the model's context length)", path, options.max_seq_len,
             options.context_length);
    ChatDataset dataset;
    dataset.path = path;
    auto& stats = dataset.stats;
    for_each_chat_example(path, stats, [&](ChatExample&& example) {
        TokenizedExample tokens = tokenize_example(example, tokenizer, chat, path);
        if (tokens.target_count == 0) {
            ++stats.no_targets;
        } else if (tokens.tokens.size() > options.max_seq_len) {
            ++stats.too_long;
            stats.longest_dropped = std::max(stats.longest_dropped, tokens.tokens.size());
        } else {
            ++stats.kept;
            stats.tokens += tokens.tokens.size();
            stats.target_tokens += tokens.target_count;
            dataset.examples.push_back(std::move(tokens));
        }
    });
    return dataset;
}

std::vector<std::string> warnings(const ChatDataset& dataset, const ChatDatasetOptions& options) {
    std::vector<std::string> out;
    const auto& stats = dataset.stats;
    if (stats.too_long > 0)
        out.push_back(fmt::format("{}: dropped {} of {} conversations longer than max_seq_len {} tokens (longest {})",
                                  dataset.path, stats.too_long, stats.lines, options.max_seq_len,
                                  stats.longest_dropped));
    if (stats.no_targets > 0)
        out.push_back(fmt::format("{}: skipped {} of {} lines with no assistant target tokens", dataset.path,
                                  stats.no_targets, stats.lines));
    return out;
}

}  // namespace kindred::train
