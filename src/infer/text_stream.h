// infer/text_stream.h — generated ids in, showable text out: text::StreamingDecoder keeps
// characters whole across tokens, bytes that cannot form a character (a model may emit any byte
// token; generation may end mid-character) become U+FFFD, as in Python's errors="replace", so
// the text is always valid UTF-8; StopStringFilter holds back what may begin a stop string and
// drops the stop string itself. The generation loop and the tests (with a scripted token source
// instead of a model) drive the same object.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "infer/stop_strings.h"
#include "text/tokenizer.h"

namespace kindred::infer {

class TextStream {
public:
    // The tokenizer must outlive the stream.
    TextStream(const text::Tokenizer& tokenizer, std::vector<std::string> stop_strings);

    // Text that may be shown after token `id`; "" once stopped().
    std::string push(std::int32_t id);
    // Generation ended for another reason: the text still held back ("" when stopped()).
    std::string finish();
    bool stopped() const { return filter_.stopped(); }

private:
    text::StreamingDecoder decoder_;
    StopStringFilter filter_;
};

}  // namespace kindred::infer
