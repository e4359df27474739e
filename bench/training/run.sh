#!/usr/bin/env bash
# bench/training/run.sh [MODEL] — QLoRA training throughput, Kindred vs transformers + PEFT on CPU
# torch, in the same run, one after the other, for each thread count in THREADS and each compute
# precision in COMPUTE (bf16: products in bf16 with fp32 sums, Kindred on AMX tiles, torch under
# autocast; fp32: everything fp32):
#   one optimizer step = ROWS rows x SEQ random tokens, every position trained, forward + backward
#   + clip_grad_norm(1.0) + AdamW; LoRA r=RANK, alpha=2·RANK, on q,k,v,o,gate,up,down;
#   one untimed warm-up step, then STEPS timed steps: mean tokens/s +- stddev over the steps.
# Prints tokens/s of each, the ratio, each process's peak RSS (getrusage; goal for Kindred < 2 GB),
# and Kindred's useful GFLOP/s (formula in bench_training.cpp) against the peak of what it ran:
# fp32 threads x 2 FMA units x floats per vector x 2 flops x clock (16 floats when the CPU has
# AVX-512, which Kindred's GEMM and torch use, else 8 for AVX2), bf16 on AMX threads x 1024 x clock;
# then the issue's goal line, Kindred bf16 against torch fp32; with the load average before and after,
# and each process's CPU seconds per step (on a busy machine the one-thread rows' CPU seconds
# compare the two more steadily than wall time does). Torch runs dequantized fp32 weights;
# Kindred keeps the GGUF's Q4_1.
#
# Environment:
#   KINDRED_BUILD  build folder holding bench/training/kindred_bench_training (default: build)
#   PYTHON         the interpreter with torch, transformers, peft, gguf (default: .venv/bin/python)
#   THREADS        thread counts to measure (default: "2 1")
#   COMPUTE        precisions to measure (default: "bf16 fp32")
#   ROWS SEQ STEPS RANK   (default 4 512 3 16)
#   CHECKPOINT     1: Kindred recomputes activations in backward (default 0; torch never does)
#   KINDRED_GEMM   openblas|avx2|avx512 forces Kindred's fp32 GEMM path (default: the best the CPU runs)
#   OPENBLAS_CORETYPE  e.g. Prescott: simulates a CPU that OpenBLAS's model table does not know
#                  (Kindred then runs its own GEMM instead; the "Kindred ran" line says what ran)
set -euo pipefail
cd "$(dirname "$0")/../.."

source bench/lib.sh
model="$(resolve_model "${1:-default}")"
build="${KINDRED_BUILD:-build}"
python="${PYTHON:-.venv/bin/python}"
thread_counts="${THREADS:-2 1}"
precisions="${COMPUTE:-bf16 fp32}"
rows="${ROWS:-4}"
seq="${SEQ:-512}"
steps="${STEPS:-3}"
rank="${RANK:-16}"
checkpoint="${CHECKPOINT:-0}"
bench="$build/bench/training/kindred_bench_training"
require_built "$bench"
require_python "$python" torch transformers peft gguf

# Clock in GHz: lscpu's max when it has one, else the highest "cpu MHz" the kernel reports.
mhz=$(lscpu 2>/dev/null | awk -F: '/CPU max MHz/ {gsub(/ /, "", $2); print $2; exit}')
[[ -n "$mhz" ]] || mhz=$(awk -F: '/^cpu MHz/ {if ($2 > m) m = $2} END {print m}' /proc/cpuinfo)
# Vector width in floats of the widest FMA the CPU reports.
if grep -qw avx512f /proc/cpuinfo; then width=16; isa=AVX-512; else width=8; isa=AVX2; fi
# AMX tiles: 1024 bf16 flops per cycle and core (the bf16 rows' peak when Kindred ran on AMX).
amx=1024


echo "model: $model"
echo "step: $rows rows x $seq tokens, LoRA r=$rank alpha=$((2 * rank)) on q,k,v,o,gate,up,down, $steps timed steps after 1 warm-up"
echo "Kindred: Q4_1 base weights, activation checkpointing $([[ $checkpoint == 1 ]] && echo on || echo off); torch: fp32 (dequantized) weights, $("$python" -c 'import torch; print(torch.__version__)')"
echo "compute: bf16 = products in bf16 with fp32 sums (Kindred: AMX tiles, fp32 where the CPU lacks AMX-BF16, shown as bf16->fp32; torch: autocast), fp32 = all fp32"
echo "clock: ${mhz} MHz, $isa ($width floats x 2 FMA units per core); load average before: $(loadavg)"

results=()
for threads in $thread_counts; do
    for compute in $precisions; do
        k=$("$bench" "$model" --threads "$threads" --rows "$rows" --seq "$seq" --steps "$steps" --rank "$rank" \
            --checkpoint "$checkpoint" --compute "$compute")
        t=$("$python" bench/training/bench_training_torch.py "$model" --threads "$threads" --rows "$rows" --seq "$seq" \
            --steps "$steps" --rank "$rank" --compute "$compute" 2>/dev/null | tail -n 1)
        echo "$k"
        echo "$t"
        results+=("$threads|$compute|$k|$t|$(loadavg)")
    done
done

echo
printf '| threads | compute | Kindred tok/s    | torch tok/s      | ratio | Kindred RSS | torch RSS | Kindred GFLOP/s (%% of peak) | CPU s/step K / torch | load after      |\n'
printf '| ------- | ------- | ---------------- | ---------------- | ----- | ----------- | --------- | --------------------------- | -------------------- | --------------- |\n'
for r in "${results[@]}"; do
    IFS='|' read -r threads compute k t load <<<"$r"
    ran=$(sed -E 's/.*"compute": ?"([a-z0-9]+)".*/\1/' <<<"$k")
    awk -v th="$threads" -v mhz="$mhz" -v width="$width" -v amx="$amx" -v load="$load" -v asked="$compute" -v ran="$ran" \
        -v kt="$(field tokens_per_second <<<"$k")" -v ks="$(field stddev <<<"$k")" \
        -v tt="$(field tokens_per_second <<<"$t")" -v ts="$(field stddev <<<"$t")" \
        -v kr="$(field peak_rss_mb <<<"$k")" -v tr="$(field peak_rss_mb <<<"$t")" \
        -v kg="$(field gflops <<<"$k")" \
        -v kc="$(field cpu_seconds_per_step <<<"$k")" -v tc="$(field cpu_seconds_per_step <<<"$t")" 'BEGIN {
        # AMX multiplies 1024 bf16 flops per cycle and core; fp32 peaks at 2 FMA units x width x 2.
        peak = (ran == "bf16" ? th * amx : th * 2 * width * 2) * mhz / 1000
        label = asked == ran ? asked : asked "->" ran
        printf "| %7d | %-7s | %7.1f +- %-5.1f | %7.1f +- %-5.1f | %4.2fx | %8.0f MB | %6.0f MB | %6.1f of %6.1f (%4.1f%%)   | %6.2f / %-6.2f (%4.2fx) | %-15s |\n",
            th, label, kt, ks, tt, ts, kt / tt, kr, tr, kg, peak, 100 * kg / peak, kc, tc, tc / kc, load
    }'
done
# The issue's goal compares Kindred's QLoRA step (bf16 compute) with torch's fp32 one.
for threads in $thread_counts; do
    kb="" tf=""
    for r in "${results[@]}"; do
        IFS='|' read -r th compute k t load <<<"$r"
        [[ $th == "$threads" && $compute == bf16 ]] && kb=$(field tokens_per_second <<<"$k")
        [[ $th == "$threads" && $compute == fp32 ]] && tf=$(field tokens_per_second <<<"$t")
    done
    [[ -n "$kb" && -n "$tf" ]] &&
        awk -v th="$threads" -v kb="$kb" -v tf="$tf" \
            'BEGIN { printf "%d thread(s): Kindred bf16 %.1f tok/s vs torch fp32 %.1f tok/s = %.2fx\n", th, kb, tf, kb / tf }'
done
echo
echo "GFLOP/step (useful work, no recomputation): $(field gflop_per_step <<<"$k")"
echo "Kindred ran: $(sed -E 's/.*"cpu_paths": ?"([^"]*)".*/\1/' <<<"$k")"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} KINDRED_GEMM=${KINDRED_GEMM:-(unset)}"
