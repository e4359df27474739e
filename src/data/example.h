// data/example.h — the one training-example schema every source is converted into, and its JSONL
// form. A chat example's assistant turns marked `target` are the LM targets; an emotion example
// (GoEmotions) carries no target and feeds only the emotion head. docs/data.md documents each field.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/labels.h"

namespace kindred::data {

enum class Role { System, User, Assistant };

struct Message {
    Role role = Role::User;
    std::string content;
    bool target = false;                  // an assistant turn the LM is trained to produce
    std::size_t prefix_chars = 0;         // leading style-token characters the loss should skip
    std::vector<std::string> strategies;  // ESConv support strategies of a (merged) supporter turn
    std::vector<int> feedback;            // ESConv seeker feedback scores (1..5) of a merged turn
};

inline Message make_message(Role role, std::string content, bool target = false) {
    Message message;
    message.role = role;
    message.content = std::move(content);
    message.target = target;
    return message;
}

enum class Task { Chat, Emotion };

struct Example {
    std::string id;      // unique across the whole prepared corpus
    std::string source;  // "empathetic_dialogues", "esconv" or "goemotions"
    std::string split;   // "train", "dev" or "test"
    Task task = Task::Chat;
    std::vector<Message> messages;
    // Emotion-head labels of the user's latest turn (several for multi-label GoEmotions, in
    // emotion_labels() order) and the source's own labels they came from.
    std::vector<std::string> emotions;
    std::vector<std::string> source_labels;
    std::optional<ValenceArousal> va;  // mean placement of `emotions`
    std::optional<std::string> situation;  // ED prompt / ESConv situation: kept, never shown to the model
    nlohmann::json original = nlohmann::json::object();  // file, line and the source's own ids
};

const char* role_name(Role role);
const char* task_name(Task task);

// Sets `emotions` (deduplicated, emotion-head order), `source_labels` and `va` from source labels
// already validated against `mappings`.
void set_emotions(Example& example, std::span<const LabelMapping> mappings, const std::vector<std::string>& source_labels);

// Keys come out in schema order (id, source, split, task, messages, ...) for people reading shards.
nlohmann::ordered_json to_json(const Example& example);

}  // namespace kindred::data
