// bench/bench_stats.h — what the side-by-side benchmarks measure the same way (bench/inference,
// bench/training, bench/dpo): the process's CPU seconds (on a shared machine a step's CPU time is
// steadier than its wall time), its peak RSS, the mean and sample standard deviation of rates, and
// a main() that turns an exception into one line on stderr and exit code 1.
#pragma once

#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
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

// return run(argc, argv), or 1 after printing "<name>: error: <what>" for an exception.
inline int guarded_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "%s: error: %s\n", name, error.what());
        return 1;
    }
}

}  // namespace kindred::bench
