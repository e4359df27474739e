#include "data/records.h"

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"

namespace kindred::data {
namespace {

constexpr std::size_t kBufferSize = std::size_t{1} << 16;

void replace_all(std::string& text, std::string_view from, std::string_view to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
}

}  // namespace

std::string trim(std::string_view text) {
    constexpr std::string_view kSpace = " \t\r\n";
    const auto first = text.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(kSpace);
    return std::string(text.substr(first, last - first + 1));
}

std::string with_straight_apostrophes(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i + 2 < text.size() && text[i] == '\xE2' && text[i + 1] == '\x80' && (text[i + 2] == '\x98' || text[i + 2] == '\x99')) {
            out += '\'';
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto byte = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        std::uint32_t code = 0;
        if (byte < 0x80) {
            ++i;
            continue;
        } else if ((byte & 0xE0) == 0xC0) {
            length = 2;
            code = byte & 0x1Fu;
        } else if ((byte & 0xF0) == 0xE0) {
            length = 3;
            code = byte & 0x0Fu;
        } else if ((byte & 0xF8) == 0xF0) {
            length = 4;
            code = byte & 0x07u;
        } else {
            return false;
        }
        if (i + length > text.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) return false;
            code = (code << 6) | (next & 0x3Fu);
        }
        constexpr std::uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < kMinimum[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
        i += length;
    }
    return true;
}

LineReader::LineReader(const std::string& path)
    : path_(path), file_(std::fopen(path.c_str(), "rb"), &std::fclose), buffer_(kBufferSize) {
    if (!file_) fail("{}: cannot open: {}", path, std::strerror(errno));
}

bool LineReader::fill() {
    if (begin_ > 0) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    const std::size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_.get());
    if (got == 0 && std::ferror(file_.get())) fail("{}: read error after line {}", path_, line_number_);
    end_ += got;
    return got > 0;
}

bool LineReader::next(std::string& line) {
    line.clear();
    bool too_long = false;
    bool any = false;
    for (;;) {
        const char* start = buffer_.data() + begin_;
        const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
        const std::size_t take = newline ? static_cast<std::size_t>(newline - start) : end_ - begin_;
        if (take > 0) any = true;
        if (!too_long && line.size() + take <= kMaxLine) {
            line.append(start, take);
        } else {
            too_long = true;
        }
        begin_ += take;
        if (newline) {
            ++begin_;
            break;
        }
        if (!fill()) {
            if (!any) return false;  // clean end of file (a final newline leaves nothing behind)
            break;
        }
    }
    ++line_number_;
    if (too_long) {
        line.clear();
        throw RecordError(fmt::format("line longer than {} bytes", kMaxLine));
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
}

std::vector<std::string_view> split_commas(std::string_view row) {
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    for (;;) {
        const auto comma = row.find(',', start);
        fields.push_back(row.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        if (comma == std::string_view::npos) return fields;
        start = comma + 1;
    }
}

std::string decode_ed_text(std::string_view field) {
    std::string text(field);
    replace_all(text, "_comma_", ",");
    return trim(text);
}

std::vector<std::string> decode_ed_candidates(std::string_view field) {
    std::vector<std::string> candidates;
    std::size_t start = 0;
    for (;;) {
        const auto bar = field.find('|', start);
        std::string candidate(field.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start));
        replace_all(candidate, "_comma_", ",");
        replace_all(candidate, "_pipe_", "|");
        candidates.push_back(trim(candidate));
        if (bar == std::string_view::npos) return candidates;
        start = bar + 1;
    }
}

bool TsvReader::next(std::vector<std::string>& fields) {
    fields.clear();
    record_line_ = lines_.line_number() + 1;
    if (!lines_.next(line_)) return false;
    std::string field;
    std::size_t at = 0;
    for (;;) {
        if (at < line_.size() && line_[at] == '"') {
            ++at;
            for (;;) {
                const auto quote = line_.find('"', at);
                if (quote == std::string::npos) {
                    field.append(line_, at);
                    if (field.size() > LineReader::kMaxLine) throw RecordError("quoted field longer than 1 MiB");
                    if (!lines_.next(line_)) throw RecordError("unterminated quoted field");
                    field.push_back('\n');
                    at = 0;
                    continue;
                }
                field.append(line_, at, quote - at);
                if (quote + 1 < line_.size() && line_[quote + 1] == '"') {
                    field.push_back('"');
                    at = quote + 2;
                    continue;
                }
                at = quote + 1;
                break;
            }
            if (at < line_.size() && line_[at] != '\t') throw RecordError("text after a closing quote");
        } else {
            const auto tab = line_.find('\t', at);
            const auto stop = tab == std::string::npos ? line_.size() : tab;
            field.append(line_, at, stop - at);
            at = stop;
        }
        fields.push_back(std::move(field));
        field.clear();
        if (at >= line_.size()) return true;
        ++at;  // the tab
    }
}

}  // namespace kindred::data
