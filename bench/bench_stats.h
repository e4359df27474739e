// bench/bench_stats.h — what the side-by-side training benchmarks measure the same way
// (bench/training, bench/dpo): the process's CPU seconds (on a shared machine a step's CPU time is
// steadier than its wall time), its peak RSS, and the mean and sample standard deviation of rates.
#pragma once

#include <sys/resource.h>

#include <cmath>
#include <ctime>
#include <utility>
#include <vector>

namespace kindred::bench {

inline double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// {mean, sample standard deviation} (0 for a single value).
inline std::pair<double, double> mean_and_stddev(const std::vector<double>& values) {
    double mean = 0.0, var = 0.0;
    for (const double v : values) mean += v;
    mean /= static_cast<double>(values.size());
    for (const double v : values) var += (v - mean) * (v - mean);
    return {mean, values.size() > 1 ? std::sqrt(var / static_cast<double>(values.size() - 1)) : 0.0};
}

}  // namespace kindred::bench
