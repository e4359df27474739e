#include "data/example.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace kindred::data {

const char* role_name(Role role) {
    switch (role) {
        case Role::System: return "system";
        case Role::User: return "user";
        case Role::Assistant: return "assistant";
    }
    return "?";
}

const char* task_name(Task task) { return task == Task::Chat ? "chat" : "emotion"; }

void set_emotions(Example& example, std::span<const LabelMapping> mappings, const std::vector<std::string>& source_labels) {
    std::vector<std::size_t> indices;
    for (const auto& label : source_labels) {
        const auto emotion = map_label(mappings, label);
        if (!emotion) fail("label '{}' has no emotion-head mapping", label);
        indices.push_back(*emotion_index(*emotion));
    }
    std::sort(indices.begin(), indices.end());
    indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
    example.source_labels = source_labels;
    example.emotions.clear();
    ValenceArousal sum;
    for (const auto index : indices) {
        const auto& label = emotion_labels()[index];
        example.emotions.emplace_back(label.name);
        sum.valence += label.va.valence;
        sum.arousal += label.va.arousal;
    }
    if (!indices.empty()) {
        const auto count = static_cast<double>(indices.size());
        example.va = ValenceArousal{sum.valence / count, sum.arousal / count};
    }
}

nlohmann::ordered_json to_json(const Example& example) {
    using nlohmann::ordered_json;
    ordered_json messages = ordered_json::array();
    for (const auto& message : example.messages) {
        ordered_json item = {{"role", role_name(message.role)}, {"content", message.content}};
        if (message.role == Role::Assistant) item["target"] = message.target;
        if (message.prefix_chars > 0) item["prefix_chars"] = message.prefix_chars;
        if (!message.strategies.empty()) item["strategies"] = message.strategies;
        if (!message.feedback.empty()) item["feedback"] = message.feedback;
        messages.push_back(std::move(item));
    }
    ordered_json out = {
        {"id", example.id},
        {"source", example.source},
        {"split", example.split},
        {"task", task_name(example.task)},
        {"messages", std::move(messages)},
        {"emotion", {{"labels", example.emotions}, {"source_labels", example.source_labels}}},
    };
    if (example.va) {
        // Means of 0.05-grid placements: six decimals drop only float noise (0.7749999999999999).
        out["valence"] = std::round(example.va->valence * 1e6) / 1e6;
        out["arousal"] = std::round(example.va->arousal * 1e6) / 1e6;
    } else {
        out["valence"] = nullptr;
        out["arousal"] = nullptr;
    }
    if (example.situation) out["situation"] = *example.situation;
    out["original"] = ordered_json(example.original);
    return out;
}

}  // namespace kindred::data
