#include "infer/text_stream.h"

#include "text/unicode.h"

namespace kindred::infer {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Invalid bytes become U+FFFD one by one; an unfinished character at the end becomes one U+FFFD.
std::string valid_utf8(std::string bytes) {
    if (text::utf8_is_complete(bytes)) return bytes;
    const std::string_view view(bytes);
    const std::size_t complete = text::utf8_complete_prefix(view);
    std::string out;
    for (std::size_t pos = 0; pos < complete;) {
        const std::size_t length = text::utf8_length_at(view.substr(0, complete), pos);
        const std::string_view character = view.substr(pos, length);
        out += text::utf8_is_complete(character) ? character : kReplacement;
        pos += length;
    }
    if (complete < view.size()) out += kReplacement;
    return out;
}

}  // namespace

TextStream::TextStream(const text::Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : decoder_(tokenizer), filter_(std::move(stop_strings)) {}

std::string TextStream::push(std::int32_t id) {
    if (filter_.stopped()) return {};
    return filter_.push(valid_utf8(decoder_.push(id)));
}

std::string TextStream::finish() {
    if (filter_.stopped()) return {};
    std::string rest = filter_.push(valid_utf8(decoder_.finish()));
    return filter_.stopped() ? rest : rest + filter_.finish();
}

}  // namespace kindred::infer
