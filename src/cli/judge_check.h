// cli/judge_check.h — the judge consistency check as `kindred eval judge-emotions` and the demo run
// it: a sample of a GoEmotions file labelled by the judge (eval/judge_emotions.h), then, when an
// adapter is given, its emotion head scored on the comments the judge labelled (results.json
// rewritten with the head's scores beside the judge's).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli/emotion_head.h"
#include "eval/judge_emotions.h"

namespace kindred::cli {

struct JudgeCheckRequest {
    std::string data;  // a GoEmotions TSV, or a folder holding dev.tsv
    std::size_t sample = 200;
    bool whole_file_when_smaller = false;  // else a sample larger than the file is an Error
    eval::JudgeEmotionsOptions run;  // run.seed draws the sample too
    std::string model = "default";   // the head's base
    std::string adapter;             // empty: no head
    std::size_t max_seq_len = 512;
};

struct JudgeCheck {
    eval::GoEmotionsFile file;
    eval::JudgeEmotionsResult result;
    std::optional<EmotionHeadScores> head;
    double judge_seconds = 0.0;
};

JudgeCheck run_judge_check(const JudgeCheckRequest& request, const eval::Eqb3Chat& judge);

}  // namespace kindred::cli
