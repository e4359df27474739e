// infer/stop_strings.h — finds stop strings in streamed text without ever showing them.
//
// A stop string may arrive split over several tokens, so text that could be the start of one is
// held back until the next piece proves it is not (then it is released) or completes it (then
// generation stops and neither the stop string nor anything after it is shown). Input pieces must
// be complete UTF-8 (text::StreamingDecoder guarantees it); the held-back suffix always starts at a
// character boundary because every stop string starts with a whole character, so outputs are
// complete UTF-8 too.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kindred::infer {

class StopStringFilter {
public:
    // Empty stop strings are ignored.
    explicit StopStringFilter(std::vector<std::string> stop_strings);

    // Appends generated text and returns what may be shown now. When a stop string completes,
    // returns the text before its first occurrence and stopped() turns true; later pushes return "".
    std::string push(std::string_view text);
    // Generation ended for another reason: returns the text still held back.
    std::string finish();

    bool stopped() const { return stopped_; }
    // Which stop string matched (empty when none).
    const std::string& matched() const { return matched_; }

private:
    std::vector<std::string> stop_strings_;
    std::string pending_;  // received, not yet shown: a suffix that may begin a stop string
    std::string matched_;
    bool stopped_ = false;
};

}  // namespace kindred::infer
