// core/metrics_log.h — a run's metrics.jsonl: one JSON object per line, appended as work goes on,
// read back for plots and reports. Crash safety comes from the write pattern, not from locking:
// each record is one write() of "<json>\n" on an O_APPEND descriptor, so a reader never sees a
// record interleaved with another, and a writer killed with SIGKILL leaves at worst one torn last
// line (only possible when the kernel accepts a short write, e.g. a full disk). Readers skip and
// report a torn last line; reopening a log for appending cuts it off so new records start clean.
// Lines reach the kernel at once (no user-space buffer), so they survive the process, not power
// loss (no fsync: one per step would cost more than the metrics are worth).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kindred {

class MetricsLog {
public:
    // Opens `path` for appending, creating it; drops a torn last line. Throws Error naming the path.
    explicit MetricsLog(const std::string& path);
    ~MetricsLog();
    MetricsLog(MetricsLog&& other) noexcept;
    MetricsLog& operator=(MetricsLog&& other) noexcept;
    MetricsLog(const MetricsLog&) = delete;
    MetricsLog& operator=(const MetricsLog&) = delete;

    // Appends `record` (must be a JSON object) as one line. NaN and infinities become null (JSON has
    // no spelling for them); invalid UTF-8 in strings is replaced by U+FFFD. Throws Error on I/O failure.
    void write(const nlohmann::json& record);
    const std::string& path() const { return path_; }

private:
    void close();
    int fd_ = -1;
    std::string path_;
};

struct MetricsLogContents {
    std::vector<nlohmann::json> records;  // every complete line, in file order
    bool truncated_tail = false;          // the last line was torn (a killed writer); it is not in records
};

// Reads a metrics.jsonl. Blank lines are skipped. Throws Error naming the file and line for a missing
// file or a line, other than a torn last one, that is not a JSON object.
MetricsLogContents read_metrics_log(const std::string& path);

// The (x, y) series of two keys: one point per record holding both as numbers, in file order.
// Records where either is missing, null (a NaN when written) or not a number are left out.
struct MetricSeries {
    std::vector<double> x;
    std::vector<double> y;
};
MetricSeries metric_series(const std::vector<nlohmann::json>& records, std::string_view x_key, std::string_view y_key);

}  // namespace kindred
