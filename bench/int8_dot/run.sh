#!/usr/bin/env bash
# bench/int8_dot/run.sh — microseconds per product of 1 to MAX_TOKENS tokens against quantized
# weights of SmolLM2, gpt-oss and Qwen3-MoE shapes, fp32 products against 8-bit-activation integer
# dots (kernels::Precision::Int8; bench_int8_dot.cpp), on KINDRED_THREADS threads (default: every
# core). Prints one table (best of REPS runs per cell; int8 speed-up = fp32 time / int8 time) and
# the load average before and after.
#
# Environment: KINDRED_BUILD (default build), REPS (default 20), MAX_TOKENS (default 32), ONLY
# (measure only the shapes whose description contains it, e.g. "Q4_1").
set -euo pipefail
cd "$(dirname "$0")/../.."

build="${KINDRED_BUILD:-build}"
bench="$build/bench/int8_dot/kindred_bench_int8_dot"
[[ -x "$bench" ]] || { echo "missing $bench: build it first (cmake --build $build --target kindred_bench_int8_dot)" >&2; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

echo "load average before: $(loadavg)"
out=$("$bench" --reps "${REPS:-20}" --max-tokens "${MAX_TOKENS:-32}" --only "${ONLY:-}")
head -1 <<<"$out"
echo
awk '
    /"cpu"/ { next }
    {
        match($0, /"shape":"[^"]*"/); shape = substr($0, RSTART + 9, RLENGTH - 10)
        match($0, /"tokens":[0-9]+/); t = substr($0, RSTART + 9, RLENGTH - 9)
        match($0, /"precision":"[^"]*"/); p = substr($0, RSTART + 13, RLENGTH - 14)
        match($0, /"us":[-0-9.eE+]+/); us = substr($0, RSTART + 5, RLENGTH - 5) + 0
        key = shape SUBSEP t
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
        time[key, p] = us
    }
    END {
        printf "| %-40s | %6s | %10s | %10s | %8s |\n", "product", "tokens", "fp32 us", "int8 us", "speed-up"
        printf "|------------------------------------------|--------|------------|------------|----------|\n"
        for (i = 1; i <= n; i++) {
            split(order[i], part, SUBSEP)
            printf "| %-40s | %6d | %10.1f | %10.1f | %7.2fx |\n", part[1], part[2], time[order[i], "fp32"],
                   time[order[i], "int8"], time[order[i], "fp32"] / time[order[i], "int8"]
        }
    }' <<<"$out"
echo
echo "load average after: $(loadavg)"
