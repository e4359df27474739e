// train/preference_pairs.cpp — reading, writing and tokenizing preference pairs (see
// preference_pairs.h).
#include "train/preference_pairs.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/json.h"
#include "data/labels.h"
#include "data/split.h"
#include "train/safety_replies.h"

namespace kindred::train {
namespace {

// A pair line nests pair -> list -> message -> field; provenance objects get some room.
constexpr int kPairJsonDepth = 16;

const nlohmann::json* optional_field(const nlohmann::json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

bool same_message(const text::ChatMessage& a, const text::ChatMessage& b) {
    return a.role == b.role && a.content == b.content && a.thinking == b.thinking;
}

std::vector<text::ChatMessage> parse_messages(const nlohmann::json& list, const std::string& field) {
    if (!list.is_array() || list.empty()) fail("{}: expected a non-empty array of messages", field);
    std::vector<text::ChatMessage> messages;
    for (std::size_t i = 0; i < list.size(); ++i)
        messages.push_back(parse_chat_message(list[i], fmt::format("{}[{}]", field, i)));
    return messages;
}

// The one assistant message a completion must be.
std::string completion_content(const std::vector<text::ChatMessage>& completion, const std::string& field) {
    if (completion.size() != 1)
        fail("{}: the completion after the prompt has {} messages; Kindred scores exactly one assistant reply", field,
             completion.size());
    if (completion.front().role != "assistant")
        fail("{}: the completion is a '{}' message, not an assistant reply", field, completion.front().role);
    return completion.front().content;
}

// TRL's extract_prompt index: the first position where the two differ, one back when the chosen
// side has a space just before it; when one is a prefix of the other, the last common position.
template <typename Sequence, typename Same>
std::size_t common_prompt_length(const Sequence& chosen, const Sequence& rejected, Same same) {
    const std::size_t shortest = std::min(chosen.size(), rejected.size());
    for (std::size_t i = 0; i < shortest; ++i)
        if (!same(chosen[i], rejected[i])) return i;
    return shortest == 0 ? 0 : shortest - 1;
}

std::size_t common_prefix(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
    std::size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

// The completion's target token ids of one document, in order.
std::vector<std::int32_t> scored_ids(const TokenizedExample& example, std::size_t begin, std::size_t end) {
    std::vector<std::int32_t> ids;
    for (std::size_t t = begin; t < end; ++t)
        if (example.targets[t] != kIgnoreTarget) ids.push_back(example.targets[t]);
    return ids;
}

// One document: `tokens`, the ones from `first_scored` on predicted (a first token has nothing
// before it to be predicted from).
TokenizedExample document(std::vector<std::int32_t> tokens, std::size_t first_scored) {
    TokenizedExample out;
    out.tokens = std::move(tokens);
    out.targets.assign(out.tokens.size(), kIgnoreTarget);
    for (std::size_t t = std::max<std::size_t>(first_scored, 1); t < out.tokens.size(); ++t) {
        out.targets[t - 1] = out.tokens[t];
        ++out.target_count;
    }
    return out;
}

// The pair as one example of two documents, prompt + chosen then prompt + rejected.
TokenizedExample join(const TokenizedExample& chosen, const TokenizedExample& rejected, std::size_t line, PairInfo& info) {
    TokenizedExample out;
    out.line = line;
    out.tokens = chosen.tokens;
    out.tokens.insert(out.tokens.end(), rejected.tokens.begin(), rejected.tokens.end());
    out.targets = chosen.targets;
    out.targets.insert(out.targets.end(), rejected.targets.begin(), rejected.targets.end());
    out.target_count = chosen.target_count + rejected.target_count;
    out.document_starts = {chosen.tokens.size()};
    out.sites = chosen.sites;
    info = PairInfo{};
    info.chosen_length = chosen.tokens.size();
    info.chosen_targets = chosen.target_count;
    info.rejected_targets = rejected.target_count;
    info.line = line;
    return out;
}

// A plain-text prompt + completion, raw (no template): the completion is what follows the tokens
// it shares with the prompt alone, then the EOS token. The text is text: a control token's
// spelling in it ("<|im_end|>") stays characters, as in a chat message (docs/dpo.md), so the EOS
// token is appended, never read from the text.
TokenizedExample tokenize_plain(const std::string& prompt, const std::string& completion, const text::Tokenizer& tokenizer,
                                bool add_bos, const std::string& where) {
    const auto eos = tokenizer.eos_id();
    if (!eos) fail("{}: a plain-text pair needs the model's EOS token, and this tokenizer has none", where);
    const auto encode = [&](const std::string& s) {
        const text::Encoding encoding = tokenizer.encode_with_spans(s, /*parse_special=*/false);
        if (encoding.dropped_bytes > 0)
            fail("{}: {} byte(s) have no token in the vocabulary (invalid or control characters)", where,
                 encoding.dropped_bytes);
        std::vector<std::int32_t> ids;
        if (add_bos) {
            if (const auto bos = tokenizer.bos_id()) ids.push_back(*bos);
        }
        ids.insert(ids.end(), encoding.ids.begin(), encoding.ids.end());
        return ids;
    };
    const std::vector<std::int32_t> prompt_ids = encode(prompt);
    std::vector<std::int32_t> tokens = encode(prompt + completion);
    tokens.push_back(*eos);
    const std::size_t prompt_length = common_prefix(prompt_ids, tokens);
    return document(std::move(tokens), prompt_length);
}

}  // namespace

PreferencePair parse_pair_line(std::string_view line, const std::string& file, std::size_t line_number) {
    const std::string where = fmt::format("{} line {}", file, line_number);
    const nlohmann::json root = parse_json(line, where, kPairJsonDepth);
    if (!root.is_object()) fail("{}: expected a JSON object with 'chosen' and 'rejected'", where);
    const auto* chosen = optional_field(root, "chosen");
    const auto* rejected = optional_field(root, "rejected");
    if (chosen == nullptr) fail("{}: missing 'chosen'", where);
    if (rejected == nullptr) fail("{}: missing 'rejected'", where);
    const auto* prompt = optional_field(root, "prompt");

    PreferencePair pair;
    pair.line = line_number;
    pair.conversational = chosen->is_array();
    if (pair.conversational) {
        if (!rejected->is_array()) fail("{}: rejected: expected messages like 'chosen' (an array)", where);
        auto chosen_messages = parse_messages(*chosen, where + ": chosen");
        auto rejected_messages = parse_messages(*rejected, where + ": rejected");
        if (prompt != nullptr) {
            if (!prompt->is_array()) fail("{}: prompt: expected an array of messages like 'chosen'", where);
            pair.prompt = parse_messages(*prompt, where + ": prompt");
        } else {
            const std::size_t n = common_prompt_length(chosen_messages, rejected_messages, same_message);
            pair.prompt.assign(chosen_messages.begin(), chosen_messages.begin() + static_cast<std::ptrdiff_t>(n));
            chosen_messages.erase(chosen_messages.begin(), chosen_messages.begin() + static_cast<std::ptrdiff_t>(n));
            rejected_messages.erase(rejected_messages.begin(), rejected_messages.begin() + static_cast<std::ptrdiff_t>(n));
            if (pair.prompt.empty()) fail("{}: chosen and rejected share no leading messages: no prompt", where);
        }
        pair.chosen = completion_content(chosen_messages, where + ": chosen");
        pair.rejected = completion_content(rejected_messages, where + ": rejected");
        if (const auto* strategies = optional_field((*chosen)[chosen->size() - 1], "strategies"))
            pair.strategy = parse_first_strategy(*strategies, where + ": chosen[" + std::to_string(chosen->size() - 1) + "]");
    } else {
        if (!chosen->is_string() || !rejected->is_string())
            fail("{}: chosen and rejected: expected two strings or two arrays of messages", where);
        pair.chosen = chosen->get<std::string>();
        pair.rejected = rejected->get<std::string>();
        if (prompt != nullptr) {
            if (!prompt->is_string()) fail("{}: prompt: expected a string like 'chosen'", where);
            pair.prompt_text = prompt->get<std::string>();
        } else {
            std::size_t n = common_prompt_length(pair.chosen, pair.rejected, std::equal_to<>());
            if (n > 0 && pair.chosen[n - 1] == ' ') --n;
            pair.prompt_text = pair.chosen.substr(0, n);
            pair.chosen.erase(0, n);
            pair.rejected.erase(0, n);
        }
        if (pair.prompt_text.empty()) fail("{}: prompt: empty (chosen and rejected share no prefix)", where);
        if (pair.chosen.empty()) fail("{}: chosen: empty", where);
        if (pair.rejected.empty()) fail("{}: rejected: empty", where);
    }
    if (const auto* source = optional_field(root, "source")) {
        if (!source->is_string()) fail("{}: source: expected a string", where);
        pair.source = source->get<std::string>();
    }
    if (const auto* provenance = optional_field(root, "provenance")) {
        if (!provenance->is_object()) fail("{}: provenance: expected an object", where);
        pair.provenance = *provenance;
    }
    ChatExample labels;
    parse_head_labels(root, where, labels);
    pair.emotions = std::move(labels.emotions);
    pair.has_va = labels.has_va;
    pair.valence = labels.valence;
    pair.arousal = labels.arousal;
    if (!pair.conversational && (!pair.emotions.empty() || pair.has_va))
        fail("{}: head labels need a conversational pair (the heads read the chat template's pooled position)", where);
    return pair;
}

std::string pair_json_line(const PreferencePair& pair) {
    if (!pair.conversational) fail("pair_json_line: only conversational pairs are written");
    nlohmann::json root;
    root["prompt"] = nlohmann::json::array();
    for (const auto& message : pair.prompt) {
        nlohmann::json item = {{"role", message.role}, {"content", message.content}};
        if (!message.thinking.empty()) item["thinking"] = message.thinking;
        root["prompt"].push_back(std::move(item));
    }
    nlohmann::json chosen = {{"role", "assistant"}, {"content", pair.chosen}};
    if (pair.strategy >= 0) chosen["strategies"] = {std::string(data::strategies()[static_cast<std::size_t>(pair.strategy)])};
    root["chosen"] = nlohmann::json::array({chosen});
    root["rejected"] = nlohmann::json::array({{{"role", "assistant"}, {"content", pair.rejected}}});
    if (!pair.source.empty()) root["source"] = pair.source;
    if (!pair.provenance.is_null()) root["provenance"] = pair.provenance;
    if (!pair.emotions.empty()) {
        nlohmann::json labels = nlohmann::json::array();
        for (const auto id : pair.emotions) labels.push_back(std::string(data::emotion_labels()[static_cast<std::size_t>(id)].name));
        root["emotion"] = {{"labels", labels}};
    }
    if (pair.has_va) {
        root["valence"] = pair.valence;
        root["arousal"] = pair.arousal;
    }
    // Replies sampled from a model may hold invalid UTF-8; JSON cannot, so it becomes U+FFFD.
    return root.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

TokenizedExample tokenize_pair(const PreferencePair& pair, const text::Tokenizer& tokenizer,
                               const text::ChatTemplate* chat, bool add_bos, const std::string& file,
                               PairInfo& info) {
    const std::string where = fmt::format("{} line {}", file, pair.line);
    TokenizedExample chosen, rejected;
    if (pair.conversational) {
        if (chat == nullptr) fail("{}: a conversational pair needs the model's chat template, and it has none", where);
        const auto conversation = [&](const std::string& reply, bool labelled) {
            ChatExample example;
            example.messages = pair.prompt;
            example.messages.push_back({"assistant", reply, {}});
            example.target.assign(example.messages.size(), false);
            example.target.back() = true;
            example.prefix_bytes.assign(example.messages.size(), 0);
            example.strategy.assign(example.messages.size(), -1);
            example.line = pair.line;
            if (labelled) {
                example.strategy.back() = pair.strategy;
                example.emotions = pair.emotions;
                example.has_va = pair.has_va;
                example.valence = pair.valence;
                example.arousal = pair.arousal;
            }
            return tokenize_example(example, tokenizer, *chat, file);
        };
        chosen = conversation(pair.chosen, true);
        rejected = conversation(pair.rejected, false);
    } else {
        chosen = tokenize_plain(pair.prompt_text, pair.chosen, tokenizer, add_bos, where);
        rejected = tokenize_plain(pair.prompt_text, pair.rejected, tokenizer, add_bos, where);
    }
    if (chosen.target_count == 0 || rejected.target_count == 0)
        fail("{}: the {} completion has no token to score", where, chosen.target_count == 0 ? "chosen" : "rejected");

    TokenizedExample out = join(chosen, rejected, pair.line, info);
    out.source = pair.source;
    info.chosen_violates = violation(data::SafetyRules::builtin(), pair.chosen).has_value();
    return out;
}

TokenizedExample tokenized_pair(std::span<const std::int32_t> prompt, std::span<const std::int32_t> chosen,
                                std::span<const std::int32_t> rejected, std::size_t line, PairInfo& info) {
    if (prompt.empty() || chosen.empty() || rejected.empty())
        fail("pair of line {}: the prompt and both completions need at least one token", line);
    const auto with_prompt = [&](std::span<const std::int32_t> completion) {
        std::vector<std::int32_t> tokens(prompt.begin(), prompt.end());
        tokens.insert(tokens.end(), completion.begin(), completion.end());
        return document(std::move(tokens), prompt.size());
    };
    return join(with_prompt(chosen), with_prompt(rejected), line, info);
}

void for_each_pair(const std::string& path, PairDatasetStats& stats, const std::function<void(PreferencePair&&)>& sink) {
    for_each_nonblank_line(path, "the pairs file", [&](std::string_view line, std::size_t number) {
        ++stats.lines;
        sink(parse_pair_line(line, path, number));
    });
}

PairDataset load_pair_dataset(const std::string& path, const text::Tokenizer& tokenizer, const text::ChatTemplate* chat,
                              const PairDatasetOptions& options) {
    if (options.context_length == 0) fail("{}: the model's context length is unknown (0)", path);
    if (options.max_seq_len < 2 || options.max_seq_len > options.context_length)
        fail("{}: max_seq_len {} must be in [2, {}] (the model's context length)", path, options.max_seq_len,
             options.context_length);
    PairDataset dataset;
    dataset.path = path;
    auto& stats = dataset.stats;
    for_each_pair(path, stats, [&](PreferencePair&& pair) {
        if (options.max_pairs > 0 && dataset.examples.size() >= options.max_pairs) return;
        PairInfo info;
        TokenizedExample example = tokenize_pair(pair, tokenizer, chat, options.add_bos, path, info);
        if (scored_ids(example, 0, info.chosen_length) == scored_ids(example, info.chosen_length, example.tokens.size())) {
            ++stats.identical;
        } else if (example.tokens.size() > options.max_seq_len) {
            ++stats.too_long;
            stats.longest_dropped = std::max(stats.longest_dropped, example.tokens.size());
        } else {
            ++stats.kept;
            stats.tokens += example.tokens.size();
            stats.completion_tokens += example.target_count;
            stats.violating_chosen += info.chosen_violates ? 1 : 0;
            dataset.examples.push_back(std::move(example));
            dataset.pairs.push_back(info);
        }
    });
    return dataset;
}

std::vector<std::string> warnings(const PairDataset& dataset, const PairDatasetOptions& options) {
    std::vector<std::string> out;
    const auto& stats = dataset.stats;
    if (stats.too_long > 0)
        out.push_back(fmt::format("{}: dropped {} of {} pairs whose two sequences exceed max_seq_len {} tokens together "
                                  "(longest {})",
                                  dataset.path, stats.too_long, stats.lines, options.max_seq_len, stats.longest_dropped));
    if (stats.identical > 0)
        out.push_back(fmt::format("{}: skipped {} of {} pairs whose chosen and rejected replies are identical (nothing "
                                  "to prefer)",
                                  dataset.path, stats.identical, stats.lines));
    if (options.max_pairs > 0 && dataset.examples.size() == options.max_pairs)
        out.push_back(fmt::format("{}: used the first {} usable pairs (max_pairs)", dataset.path, options.max_pairs));
    return out;
}

std::uint64_t fingerprint(const PairDataset& dataset) {
    std::string bytes;
    for (const auto& example : dataset.examples) {
        const auto append = [&](const std::vector<std::int32_t>& values) {
            bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(std::int32_t));
            bytes.push_back('|');
        };
        append(example.tokens);
        append(example.targets);
        bytes += std::to_string(example.document_starts.empty() ? 0 : example.document_starts.front()) + ";";
    }
    return data::fnv1a64(bytes);
}

}  // namespace kindred::train
