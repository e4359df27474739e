// cli/emotion_head.h — an adapter folder's emotion head scored on a GoEmotions-format TSV (all of
// it, or the comments on given lines), the model and the head opened as `kindred eval emotion`
// opens them; shared by that command, `eval judge-emotions` and the demo's judge check.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "eval/goemotions_eval.h"

namespace kindred::cli {

struct EmotionHeadRequest {
    std::string model = "default";  // the base the head was trained on
    std::string adapter;            // heads.json, heads.safetensors; PEFT files when LoRA was trained
    std::string data;               // the TSV
    std::optional<std::string> system_prompt;  // default: the head's own (heads.json), else data prepare's
    std::optional<double> threshold;           // default: the head's own
    std::size_t max_seq_len = 512;
    std::vector<std::size_t> lines;  // only these records (empty: all)
};

struct EmotionHeadScores {
    eval::GoEmotionsReport report;
    std::string activation;  // the head's ("softmax", "sigmoid")
};

EmotionHeadScores score_emotion_head(const EmotionHeadRequest& request);

}  // namespace kindred::cli
