#include "cli/judge_check.h"

#include <algorithm>
#include <chrono>

namespace kindred::cli {

JudgeCheck run_judge_check(const JudgeCheckRequest& request, const eval::Eqb3Chat& judge) {
    JudgeCheck check;
    check.file = eval::read_goemotions_comments(request.data);
    const std::size_t size = request.whole_file_when_smaller ? std::min(request.sample, check.file.comments.size()) : request.sample;
    const auto sample = eval::sample_goemotions_comments(check.file, size, request.run.seed);
    const auto start = std::chrono::steady_clock::now();
    check.result = eval::run_judge_emotions(check.file, sample, judge, request.run);
    check.judge_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!request.adapter.empty() && !check.result.labelled_lines.empty()) {
        EmotionHeadRequest head;
        head.model = request.model;
        head.adapter = request.adapter;
        head.data = check.file.path;
        head.max_seq_len = request.max_seq_len;
        head.lines = check.result.labelled_lines;
        check.head = score_emotion_head(head);
        eval::write_judge_emotions_results(request.run.out, check.result, &check.head->report);
    }
    return check;
}

}  // namespace kindred::cli
