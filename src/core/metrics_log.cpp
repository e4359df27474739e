// core/metrics_log.cpp — POSIX file descriptors rather than streams: one record must be one write().
#include "core/metrics_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace kindred {
namespace {

// Cuts the file back to just after its last '\n' when it does not end with one.
void drop_torn_tail(int fd, const std::string& path) {
    struct stat info {};
    if (fstat(fd, &info) != 0) fail("cannot stat metrics log '{}': {}", path, std::strerror(errno));
    off_t end = info.st_size;
    char buffer[4096];
    while (end > 0) {
        const off_t start = end > static_cast<off_t>(sizeof buffer) ? end - static_cast<off_t>(sizeof buffer) : 0;
        const auto length = static_cast<std::size_t>(end - start);
        if (pread(fd, buffer, length, start) != static_cast<ssize_t>(length)) {
            fail("cannot read metrics log '{}': {}", path, std::strerror(errno));
        }
        for (std::size_t i = length; i > 0; --i) {
            if (buffer[i - 1] == '\n') {
                end = start + static_cast<off_t>(i);
                if (end != info.st_size && ftruncate(fd, end) != 0) {
                    fail("cannot repair metrics log '{}': {}", path, std::strerror(errno));
                }
                return;
            }
        }
        end = start;
    }
    if (info.st_size > 0 && ftruncate(fd, 0) != 0) fail("cannot repair metrics log '{}': {}", path, std::strerror(errno));
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open metrics log '{}': {}", path, std::strerror(errno));
    try {
        drop_torn_tail(fd_, path_);
    } catch (...) {
        close();
        throw;
    }
}

MetricsLog::~MetricsLog() { close(); }

MetricsLog::MetricsLog(MetricsLog&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

MetricsLog& MetricsLog::operator=(MetricsLog&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = other.fd_;
        path_ = std::move(other.path_);
        other.fd_ = -1;
    }
    return *this;
}

void MetricsLog::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void MetricsLog::write(const nlohmann::json& record) {
    if (fd_ < 0) fail("metrics log '{}' is closed", path_);
    if (!record.is_object()) fail("metrics log '{}': a record must be a JSON object, got {}", path_, record.type_name());
    const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::size_t written = 0;
    while (written < line.size()) {  // more than one round only after a short write (disk full, signal)
        const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("cannot write metrics log '{}': {}", path_, std::strerror(errno));
        written += static_cast<std::size_t>(n);
    }
}

MetricsLogContents read_metrics_log(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open metrics log '{}'", path);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();

    MetricsLogContents contents;
    std::size_t start = 0;
    for (std::size_t line_number = 1; start < text.size(); ++line_number) {
        const std::size_t newline = text.find('\n', start);
        const bool complete = newline != std::string::npos;
        const std::string_view line(text.data() + start, (complete ? newline : text.size()) - start);
        start = complete ? newline + 1 : text.size();
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_object()) {
            contents.records.push_back(std::move(record));
        } else if (!complete) {
            contents.truncated_tail = true;
        } else {
            fail("{} line {}: not a JSON object", path, line_number);
        }
    }
    return contents;
}

MetricSeries metric_series(const std::vector<nlohmann::json>& records, std::string_view x_key, std::string_view y_key) {
    MetricSeries series;
    for (const auto& record : records) {
        const auto x = record.find(x_key);
        const auto y = record.find(y_key);
        if (x == record.end() || y == record.end() || !x->is_number() || !y->is_number()) continue;
        series.x.push_back(x->get<double>());
        series.y.push_back(y->get<double>());
    }
    return series;
}

}  // namespace kindred
