#!/usr/bin/env bash
# bench/gemm/run.sh — one-thread GFLOP/s of each fp32 GEMM path on the shapes of a SmolLM2 QLoRA
# step (bench_gemm.cpp): Kindred's own kernels (AVX-512, AVX2; cpu::sgemm runs them where the
# core OpenBLAS picked lacks the CPU's widest vectors) against OpenBLAS with the core it picks from its CPU-model table and with
# the cores named in CORES forced through OPENBLAS_CORETYPE (default: Haswell, SkylakeX where the
# CPU has AVX-512, and Prescott, the generic kernels OpenBLAS falls back to on a CPU it does not
# know). Prints a table of the best of three runs per cell, the fp32 peak of one core and the load
# average before and after.
#
# Environment: KINDRED_BUILD (default build), REPS (runs per measurement, default 20), CORES.
set -euo pipefail
cd "$(dirname "$0")/../.."

build="${KINDRED_BUILD:-build}"
reps="${REPS:-20}"
bench="$build/bench/gemm/kindred_bench_gemm"
[[ -x "$bench" ]] || { echo "missing $bench: build it first (cmake --build $build --target kindred_bench_gemm)" >&2; exit 1; }
if grep -qw avx512f /proc/cpuinfo; then width=16; default_cores="Haswell SkylakeX Prescott"; else width=8; default_cores="Haswell Prescott"; fi
cores="${CORES:-$default_cores}"
mhz=$(lscpu 2>/dev/null | awk -F: '/CPU max MHz/ {gsub(/ /, "", $2); print $2; exit}')
[[ -n "$mhz" ]] || mhz=$(awk -F: '/^cpu MHz/ {if ($2 > m) m = $2} END {print m}' /proc/cpuinfo)
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

echo "load average before: $(loadavg)"
echo "one core's fp32 peak: $(awk -v w="$width" -v mhz="$mhz" 'BEGIN {printf "%.1f", 2 * w * 2 * mhz / 1000}') GFLOP/s (2 FMA units x $width floats x ${mhz} MHz)"
out=$(for run in 1 2 3; do
    env -u OPENBLAS_CORETYPE "$bench" --reps "$reps"
    for core in $cores; do OPENBLAS_CORETYPE="$core" "$bench" --reps "$reps" | grep -v '"path":"Kindred'; done
done)
grep -m1 '"cpu_paths"' <<<"$out" | sed -E 's/.*"cpu_paths":"([^"]*)".*/Kindred runs: \1/'
echo
# One row per shape, one column per path, best GFLOP/s of the runs.
awk '
    /"cpu_paths"/ { next }
    {
        match($0, /"shape":"[^"]*"/); shape = substr($0, RSTART + 9, RLENGTH - 10)
        match($0, /"path":"[^"]*"/); path = substr($0, RSTART + 8, RLENGTH - 9)
        match($0, /"m":[0-9]+/); m = substr($0, RSTART + 4, RLENGTH - 4)
        match($0, /"n":[0-9]+/); n = substr($0, RSTART + 4, RLENGTH - 4)
        match($0, /"k":[0-9]+/); k = substr($0, RSTART + 4, RLENGTH - 4)
        match($0, /"gflops":[-0-9.eE+]+/); g = substr($0, RSTART + 9, RLENGTH - 9) + 0
        if (!(shape in seen)) { seen[shape] = 1; order[++shapes] = shape; dims[shape] = m "x" n "x" k }
        if (!(path in known)) { known[path] = 1; paths[++npaths] = path }
        if (g > best[shape, path]) best[shape, path] = g
    }
    END {
        printf "| %-38s | %-13s |", "product (one thread)", "m x n x k"
        for (p = 1; p <= npaths; p++) printf " %-21s |", paths[p]
        printf "\n|%s|%s|", "----------------------------------------", "---------------"
        for (p = 1; p <= npaths; p++) printf "%s|", "-----------------------"
        printf "\n"
        for (s = 1; s <= shapes; s++) {
            printf "| %-38s | %-13s |", order[s], dims[order[s]]
            for (p = 1; p <= npaths; p++) printf " %21.1f |", best[order[s], paths[p]]
            printf "\n"
        }
    }' <<<"$out"
echo
echo "load average after: $(loadavg)"
