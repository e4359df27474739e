#include "train/chat_dataset.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"
#include "data/labels.h"
#include "data/source.h"

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

// The example's emotion labels as head ids of `space`, sorted and deduplicated (the head's soft
// target is uniform over the set, so order and repeats carry nothing): `emotion.labels` in the
// Kindred space; in the GoEmotions space `emotion.source_labels` of GoEmotions examples, and none
// for other sources (their labels are not GoEmotions labels).
std::vector<std::int32_t> parse_emotions(const nlohmann::json& emotion, const std::string& where,
                                         data::EmotionSpace space, const std::string& source) {
    if (!emotion.is_object()) fail("{}: emotion: expected an object with 'labels'", where);
    std::vector<std::int32_t> ids;
    const bool goemotions = space == data::EmotionSpace::GoEmotions;
    if (goemotions && source != "goemotions") return ids;
    const char* key = goemotions ? "source_labels" : "labels";
    const auto* labels = optional_field(emotion, key);
    if (labels == nullptr) return ids;
    if (!labels->is_array()) fail("{}: emotion.{}: expected an array of label names", where, key);
    const auto names = data::emotion_space_labels(space);
    for (std::size_t i = 0; i < labels->size(); ++i) {
        const auto& label = (*labels)[i];
        if (!label.is_string()) fail("{}: emotion.{}[{}]: expected a string", where, key, i);
        const auto found = std::find(names.begin(), names.end(), label.get_ref<const std::string&>());
        if (found == names.end())
            fail("{}: emotion.{}[{}]: '{}' is not an emotion-head label (the {} set; docs/data.md lists them)", where,
                 key, i, label.get_ref<const std::string&>(), data::emotion_space_name(space));
        ids.push_back(static_cast<std::int32_t>(found - names.begin()));
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

}  // namespace

// The id of a message's FIRST strategy (the one that opens the reply); every entry is checked.
std::int32_t parse_first_strategy(const nlohmann::json& strategies, const std::string& field) {
    if (!strategies.is_array()) fail("{}.strategies: expected an array of strategy names", field);
    const auto known = data::strategies();
    std::int32_t first = -1;
    for (std::size_t j = 0; j < strategies.size(); ++j) {
        const auto& name = strategies[j];
        if (!name.is_string()) fail("{}.strategies[{}]: expected a string", field, j);
        const auto canonical = data::normalize_strategy(name.get_ref<const std::string&>());
        if (!canonical)
            fail("{}.strategies[{}]: unknown strategy '{}' (docs/data.md lists the 8)", field, j,
                 name.get_ref<const std::string&>());
        if (j == 0)
            first = static_cast<std::int32_t>(std::find(known.begin(), known.end(), *canonical) - known.begin());
    }
    return first;
}

// The emotion labels of `space` (parse_emotions; out.source set), and valence/arousal: both
// null/absent or both numbers on the circumplex [-1, 1].
void parse_head_labels(const nlohmann::json& root, const std::string& where, ChatExample& out, data::EmotionSpace space) {
    if (const auto* emotion = optional_field(root, "emotion"))
        out.emotions = parse_emotions(*emotion, where, space, out.source);
    const auto* valence = optional_field(root, "valence");
    const auto* arousal = optional_field(root, "arousal");
    if (valence == nullptr && arousal == nullptr) return;
    if (valence == nullptr || arousal == nullptr) fail("{}: valence and arousal: give both or neither", where);
    for (const auto& [value, key] : {std::pair{valence, "valence"}, std::pair{arousal, "arousal"}}) {
        if (!value->is_number()) fail("{}: {}: expected a number or null", where, key);
        const double x = value->get<double>();
        if (!(x >= -1.0 && x <= 1.0)) fail("{}: {}: {} is outside [-1, 1]", where, key, x);
    }
    out.has_va = true;
    out.valence = valence->get<float>();
    out.arousal = arousal->get<float>();
}

text::ChatMessage parse_chat_message(const nlohmann::json& item, const std::string& field) {
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
    return message;
}

namespace {

// One rendering of a conversation, tokenized: ids with byte spans, the trained-token mask, and
// where each assistant message's span starts in the text (npos for other roles).
struct EncodedChat {
    text::Encoding encoding;
    std::vector<std::uint8_t> mask;
    std::vector<std::size_t> turn_begin;
};

EncodedChat encode_chat(std::span<const text::ChatMessage> messages, const std::vector<bool>& target,
                        const std::vector<std::size_t>& prefix_bytes, bool add_generation_prompt,
                        const text::Tokenizer& tokenizer, const text::ChatTemplate& chat, const std::string& where) {
    text::RenderedChat rendered;
    try {
        rendered = chat.render(messages, add_generation_prompt);
    } catch (const Error& error) {
        fail("{}: {}", where, error.what());
    }

    // Narrow each assistant span to what this example trains: target turns only, style prefix out.
    EncodedChat out;
    out.turn_begin.assign(messages.size(), std::string::npos);
    std::vector<std::pair<std::size_t, std::size_t>> trained;
    std::size_t span = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].role != "assistant") continue;
        if (span >= rendered.assistant_spans.size())
            fail("{}: the {} template rendered fewer assistant spans than assistant turns", where, chat.name());
        auto [begin, end] = rendered.assistant_spans[span++];
        out.turn_begin[i] = begin;
        if (!target[i]) continue;
        if (const auto prefix = prefix_bytes[i]; prefix > 0) {
            const std::string_view style = std::string_view(messages[i].content).substr(0, prefix);
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

    // Control tokens only where the template wrote them: a message spelling "<|im_end|>" must not
    // teach the model a turn that ends or opens there.
    out.encoding = tokenizer.encode_with_markup(rendered.text, rendered.markup);
    if (out.encoding.dropped_bytes > 0)
        fail("{}: {} byte(s) have no token in the vocabulary (invalid or control characters)", where,
             out.encoding.dropped_bytes);
    out.mask = text::assistant_token_mask(out.encoding, rendered);
    return out;
}

// The last token that ends at or before byte `begin`: the assistant header's last token when
// `begin` is where the template starts the assistant's part.
std::int32_t last_token_before(const text::Encoding& encoding, std::size_t begin, const std::string& where,
                               std::size_t message) {
    for (std::size_t t = encoding.spans.size(); t > 0; --t) {
        const auto& token = encoding.spans[t - 1];
        if (token.second <= begin && token.second > token.first) return static_cast<std::int32_t>(t - 1);
    }
    fail("{}: messages[{}]: no token precedes the assistant turn to pool the heads at", where, message);
}

// The teacher's messages: the rules prepended to the leading system (or developer) message, or a
// system message of the rules in front; per-message flags follow their message.
void add_rules(std::string_view rules, std::vector<text::ChatMessage>& messages, std::vector<bool>& target,
               std::vector<std::size_t>& prefix_bytes) {
    const std::string text(rules);
    if (!messages.empty() && (messages[0].role == "system" || messages[0].role == "developer")) {
        messages[0].content = text + "\n\n" + messages[0].content;
        return;
    }
    messages.insert(messages.begin(), text::ChatMessage{"system", text, {}});
    target.insert(target.begin(), false);
    prefix_bytes.insert(prefix_bytes.begin(), 0);
}

// Records the emotion-only example's system message into the stats (one shared, or "differ").
void note_system_prompt(const ChatExample& example, ChatDatasetStats& stats) {
    const bool has = !example.messages.empty() && example.messages.front().role == "system";
    const std::string prompt = has ? example.messages.front().content : std::string();
    if (stats.emotion_examples++ == 0) {
        stats.emotion_system_prompt = prompt;
    } else if (!stats.emotion_system_prompts_differ && prompt != stats.emotion_system_prompt) {
        stats.emotion_system_prompts_differ = true;
        stats.emotion_system_prompt.clear();
    }
}

}  // namespace

bool parse_chat_line(std::string_view line, const std::string& file, std::size_t line_number, ChatExample& out,
                     bool keep_emotion_only, data::EmotionSpace emotion_space) {
    const std::string where = fmt::format("{} line {}", file, line_number);
    const nlohmann::json root = parse_json(line, where, kLineJsonDepth);
    if (!root.is_object()) fail("{}: expected a JSON object with 'messages'", where);
    bool emotion_only = false;
    if (const auto* task = optional_field(root, "task")) {
        if (!task->is_string() || (*task != "chat" && *task != "emotion"))
            fail("{}: task: expected \"chat\" or \"emotion\"", where);
        emotion_only = *task == "emotion";
        if (emotion_only && !keep_emotion_only) return false;
    }
    const auto messages = root.find("messages");
    if (messages == root.end()) fail("{}: missing 'messages'", where);
    if (!messages->is_array() || messages->empty()) fail("{}: messages: expected a non-empty array", where);

    out = ChatExample{};
    out.line = line_number;
    out.emotion_only = emotion_only;
    if (const auto* source = optional_field(root, "source")) {
        if (!source->is_string()) fail("{}: source: expected a string", where);
        out.source = source->get<std::string>();
    }
    parse_head_labels(root, where, out, emotion_space);
    for (std::size_t i = 0; i < messages->size(); ++i) {
        const auto& item = (*messages)[i];
        const std::string field = fmt::format("{}: messages[{}]", where, i);
        text::ChatMessage message = parse_chat_message(item, field);
        const bool assistant = message.role == "assistant";
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
        std::int32_t strategy = -1;
        if (const auto* strategies = optional_field(item, "strategies")) {
            if (!assistant) fail("{}.strategies: only assistant turns carry strategies", field);
            strategy = parse_first_strategy(*strategies, field);
        }
        out.messages.push_back(std::move(message));
        out.target.push_back(target && !emotion_only);  // an emotion example has no LM target
        out.prefix_bytes.push_back(prefix);
        out.strategy.push_back(strategy);
    }
    return true;
}

bool drop_opening_assistant_turns(ChatExample& example) {
    const auto& messages = example.messages;
    std::size_t begin = 0;
    while (begin < messages.size() && (messages[begin].role == "system" || messages[begin].role == "developer")) ++begin;
    std::size_t end = begin;
    while (end < messages.size() && messages[end].role == "assistant") ++end;
    if (end == begin) return false;
    const auto erase = [&](auto& per_message) {
        per_message.erase(per_message.begin() + static_cast<std::ptrdiff_t>(begin),
                          per_message.begin() + static_cast<std::ptrdiff_t>(end));
    };
    erase(example.messages);
    erase(example.target);
    erase(example.prefix_bytes);
    erase(example.strategy);
    return true;
}

void for_each_nonblank_line(const std::string& path, const char* what,
                            const std::function<void(std::string_view line, std::size_t number)>& sink) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open {}", path, what);
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        sink(line, number);
    }
    if (in.bad()) fail("{}: read error after line {}", path, number);
}

void for_each_chat_example(const std::string& path, ChatDatasetStats& stats,
                           const std::function<void(ChatExample&&)>& sink, bool keep_emotion_only,
                           data::EmotionSpace emotion_space) {
    for_each_nonblank_line(path, "the chat dataset", [&](std::string_view line, std::size_t number) {
        ++stats.lines;
        ChatExample example;
        if (!parse_chat_line(line, path, number, example, keep_emotion_only, emotion_space)) {
            ++stats.no_targets;
            return;
        }
        sink(std::move(example));
    });
}

TokenizedExample tokenize_example(const ChatExample& example, const text::Tokenizer& tokenizer,
                                  const text::ChatTemplate& chat, const std::string& file,
                                  std::string_view teacher_rules) {
    const std::string where = fmt::format("{} line {}", file, example.line);
    const EncodedChat student = encode_chat(example.messages, example.target, example.prefix_bytes,
                                            /*add_generation_prompt=*/example.emotion_only, tokenizer, chat, where);

    TokenizedExample out;
    out.line = example.line;
    out.source = example.source;
    out.multi_label = example.source == "goemotions";
    out.tokens = student.encoding.ids;
    out.targets.assign(out.tokens.size(), kIgnoreTarget);
    for (std::size_t t = 0; t + 1 < out.tokens.size(); ++t) {
        if (student.mask[t + 1] == 0) continue;
        out.targets[t] = out.tokens[t + 1];
        ++out.target_count;
    }

    const auto add_site = [&](std::int32_t position, std::int32_t strategy) {
        HeadSite site;
        site.position = position;
        site.emotions = example.emotions;
        site.strategy = strategy;
        site.has_va = example.has_va;
        site.valence = example.valence;
        site.arousal = example.arousal;
        if (!site.emotions.empty() || site.strategy >= 0 || site.has_va) out.sites.push_back(std::move(site));
    };
    if (example.emotion_only) {
        if (!out.tokens.empty()) add_site(static_cast<std::int32_t>(out.tokens.size() - 1), -1);
    } else {
        for (std::size_t i = 0; i < example.messages.size(); ++i) {
            if (!example.target[i]) continue;
            add_site(last_token_before(student.encoding, student.turn_begin[i], where, i), example.strategy[i]);
        }
    }

    if (!teacher_rules.empty() && out.target_count > 0) {
        auto messages = example.messages;
        auto target = example.target;
        auto prefix_bytes = example.prefix_bytes;
        add_rules(teacher_rules, messages, target, prefix_bytes);
        const EncodedChat teacher =
            encode_chat(messages, target, prefix_bytes, /*add_generation_prompt=*/false, tokenizer, chat, where);
        out.teacher_tokens = teacher.encoding.ids;
        for (std::size_t t = 0; t + 1 < out.teacher_tokens.size(); ++t) {
            if (teacher.mask[t + 1] != 0) out.teacher_positions.push_back(static_cast<std::int32_t>(t));
        }
        if (out.teacher_positions.size() != out.target_count)
            fail("{}: the safety teacher's rendering has {} target tokens where the student's has {}", where,
                 out.teacher_positions.size(), out.target_count);
        std::size_t k = 0;
        for (std::size_t t = 0; t < out.targets.size(); ++t) {
            if (out.targets[t] == kIgnoreTarget) continue;
            const auto position = static_cast<std::size_t>(out.teacher_positions[k]);
            if (out.teacher_tokens[position + 1] != out.targets[t])
                fail("{}: target token {} differs between the safety teacher's rendering ({}) and the student's ({})",
                     where, k, out.teacher_tokens[position + 1], out.targets[t]);
            ++k;
        }
    }
    return out;
}

namespace {

// The style an example carries: leading tags of its system message, else of a target reply's
// style prefix.
std::optional<data::StyleTokens> style_of(const ChatExample& example) {
    for (std::size_t i = 0; i < example.messages.size(); ++i) {
        const text::ChatMessage& message = example.messages[i];
        if (message.role == "system") {
            if (const auto tags = data::leading_style(message.content)) return data::StyleTokens{*tags, data::StylePlacement::System};
        } else if (example.target[i] && example.prefix_bytes[i] > 0) {
            if (const auto tags = data::leading_style(message.content)) return data::StyleTokens{*tags, data::StylePlacement::Assistant};
        }
    }
    return std::nullopt;
}

void add_style(ChatExample& example, const data::StyleTokens& style, const std::string& file) {
    if (style_of(example)) fail("{} line {}: the example already carries style tokens, and the recipe's data.style adds {}", file, example.line, style.text);
    if (style.placement == data::StylePlacement::System) {
        if (example.messages.empty() || example.messages.front().role != "system") {
            example.messages.insert(example.messages.begin(), {"system", data::LoadOptions{}.system_prompt, {}});
            example.target.insert(example.target.begin(), false);
            example.prefix_bytes.insert(example.prefix_bytes.begin(), 0);
            example.strategy.insert(example.strategy.begin(), -1);
        }
        example.messages.front().content = data::styled(style, example.messages.front().content);
        return;
    }
    for (std::size_t i = 0; i < example.messages.size(); ++i) {
        if (!example.target[i]) continue;
        example.messages[i].content = data::styled(style, example.messages[i].content);
        example.prefix_bytes[i] = style.text.size() + 1;
    }
}

}  // namespace

ChatDataset load_chat_dataset(const std::string& path, const text::Tokenizer& tokenizer, const text::ChatTemplate& chat,
                              const ChatDatasetOptions& options) {
    if (options.context_length == 0) fail("{}: the model's context length is unknown (0)", path);
    if (options.max_seq_len == 0 || options.max_seq_len > options.context_length)
        fail("{}: max_seq_len {} must be in [1, {}] (the model's context length)", path, options.max_seq_len,
             options.context_length);
    ChatDataset dataset;
    dataset.path = path;
    auto& stats = dataset.stats;
    for_each_chat_example(
        path, stats,
        [&](ChatExample&& example) {
            if (chat.requires_user_first() && drop_opening_assistant_turns(example)) ++stats.opening_assistant_dropped;
            if (options.style && !example.emotion_only) add_style(example, *options.style, path);
            const std::optional<data::StyleTokens> style = style_of(example);
            TokenizedExample tokens = tokenize_example(example, tokenizer, chat, path, options.teacher_rules);
            if (tokens.target_count == 0 && tokens.sites.empty()) {
                ++stats.no_targets;
            } else if (tokens.tokens.size() > options.max_seq_len) {
                ++stats.too_long;
                stats.longest_dropped = std::max(stats.longest_dropped, tokens.tokens.size());
            } else {
                if (example.emotion_only) note_system_prompt(example, stats);
                ++stats.kept;
                stats.tokens += tokens.tokens.size();
                stats.target_tokens += tokens.target_count;
                stats.sites += tokens.sites.size();
                dataset.examples.push_back(std::move(tokens));
                if (style && std::find(dataset.styles.begin(), dataset.styles.end(), *style) == dataset.styles.end())
                    dataset.styles.push_back(*style);
            }
        },
        options.keep_emotion_only, options.emotion_space);
    return dataset;
}

std::vector<std::string> warnings(const ChatDataset& dataset, const ChatDatasetOptions& options) {
    std::vector<std::string> out;
    const auto& stats = dataset.stats;
    if (stats.too_long > 0)
        out.push_back(fmt::format("{}: dropped {} of {} conversations longer than max_seq_len {} tokens (longest {})",
                                  dataset.path, stats.too_long, stats.lines, options.max_seq_len,
                                  stats.longest_dropped));
    if (stats.opening_assistant_dropped > 0)
        out.push_back(fmt::format("{}: left out the opening assistant turns of {} of {} conversations: the model's chat "
                                  "template needs a user turn first",
                                  dataset.path, stats.opening_assistant_dropped, stats.lines));
    if (stats.no_targets > 0)
        out.push_back(fmt::format("{}: skipped {} of {} lines with nothing to train: no assistant target turn nor head "
                                  "label{}",
                                  dataset.path, stats.no_targets, stats.lines,
                                  options.keep_emotion_only ? "" : ", or an emotion-only example"));
    return out;
}

}  // namespace kindred::train
