// bench/bench_main.h — the main() of every benchmark program: runs it, and turns an exception into
// one line on stderr and exit code 1.
#pragma once

#include <cstdio>
#include <exception>

template <typename Run>
int bench_main(const char* program, Run run, int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "%s: error: %s\n", program, error.what());
        return 1;
    }
}
