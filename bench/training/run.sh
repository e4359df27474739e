#!/usr/bin/env bash
# bench/training/run.sh [MODEL] — QLoRA training throughput, Kindred vs transformers + PEFT on CPU
# torch (fp32), in the same run, one after the other, for each thread count in THREADS:
#   one optimizer step = ROWS rows x SEQ random tokens, every position trained, forward + backward
#   + clip_grad_norm(1.0) + AdamW; LoRA r=RANK, alpha=2·RANK, on q,k,v,o,gate,up,down;
#   one untimed warm-up step, then STEPS timed steps: mean tokens/s +- stddev over the steps.
# Prints tokens/s of each, the ratio, each process's peak RSS (getrusage; goal for Kindred < 2 GB),
# and Kindred's useful GFLOP/s (formula in bench_training.cpp) against the fp32 peak
# (threads x 2 FMA units x floats per vector x 2 flops x clock; 16 floats when the CPU has
# AVX-512, which OpenBLAS and torch use, else 8 for AVX2), with the load average before and after,
# and each process's CPU seconds per step (on a busy machine the one-thread rows' CPU seconds
# compare the two more steadily than wall time does). Torch runs dequantized fp32 weights;
# Kindred keeps the GGUF's Q4_1.
#
# Environment:
#   KINDRED_BUILD  build folder holding bench/training/kindred_bench_training (default: build)
#   PYTHON         the interpreter with torch, transformers, peft, gguf (default: .venv/bin/python)
#   THREADS        thread counts to measure (default: "2 1")
#   ROWS SEQ STEPS RANK   (default 4 512 3 16)
#   CHECKPOINT     1: Kindred recomputes activations in backward (default 0; torch never does)
set -euo pipefail
cd "$(dirname "$0")/../.."

model="${1:-default}"
build="${KINDRED_BUILD:-build}"
python="${PYTHON:-.venv/bin/python}"
thread_counts="${THREADS:-2 1}"
rows="${ROWS:-4}"
seq="${SEQ:-512}"
steps="${STEPS:-3}"
rank="${RANK:-16}"
checkpoint="${CHECKPOINT:-0}"
bench="$build/bench/training/kindred_bench_training"
if [[ "$model" == default ]]; then
    model="${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
[[ -f "$model" ]] || { echo "model not found: $model (scripts/fetch-default-model fetches the default)" >&2; exit 1; }
[[ -x "$bench" ]] || { echo "missing $bench: build it first (cmake --build $build --target kindred_bench_training)" >&2; exit 1; }
"$python" -c "import torch, transformers, peft, gguf" 2>/dev/null ||
    { echo "$python lacks torch/transformers/peft/gguf (set PYTHON)" >&2; exit 1; }

# Clock in GHz: lscpu's max when it has one, else the highest "cpu MHz" the kernel reports.
mhz=$(lscpu 2>/dev/null | awk -F: '/CPU max MHz/ {gsub(/ /, "", $2); print $2; exit}')
[[ -n "$mhz" ]] || mhz=$(awk -F: '/^cpu MHz/ {if ($2 > m) m = $2} END {print m}' /proc/cpuinfo)
# Vector width in floats of the widest FMA the CPU reports.
if grep -qw avx512f /proc/cpuinfo; then width=16; isa=AVX-512; else width=8; isa=AVX2; fi
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

field() {  # field NAME <<< '{"a":1,...}'  -> the value after "NAME":
    sed -E "s/.*\"$1\": ?([-0-9.eE+]+).*/\1/"
}

echo "model: $model"
echo "step: $rows rows x $seq tokens, LoRA r=$rank alpha=$((2 * rank)) on q,k,v,o,gate,up,down, $steps timed steps after 1 warm-up"
echo "Kindred: Q4_1 base weights, activation checkpointing $([[ $checkpoint == 1 ]] && echo on || echo off); torch: fp32 (dequantized) weights, $("$python" -c 'import torch; print(torch.__version__)')"
echo "clock: ${mhz} MHz, $isa ($width floats x 2 FMA units per core); load average before: $(loadavg)"

results=()
for threads in $thread_counts; do
    k=$("$bench" "$model" --threads "$threads" --rows "$rows" --seq "$seq" --steps "$steps" --rank "$rank" --checkpoint "$checkpoint")
    t=$("$python" bench/training/bench_training_torch.py "$model" --threads "$threads" --rows "$rows" --seq "$seq" \
        --steps "$steps" --rank "$rank" 2>/dev/null | tail -n 1)
    echo "$k"
    echo "$t"
    results+=("$threads|$k|$t|$(loadavg)")
done

echo
printf '| threads | Kindred tok/s    | torch tok/s      | ratio | Kindred RSS | torch RSS | Kindred GFLOP/s (%% of peak) | CPU s/step K / torch | load after      |\n'
printf '| ------- | ---------------- | ---------------- | ----- | ----------- | --------- | --------------------------- | -------------------- | --------------- |\n'
for r in "${results[@]}"; do
    IFS='|' read -r threads k t load <<<"$r"
    awk -v th="$threads" -v mhz="$mhz" -v width="$width" -v load="$load" \
        -v kt="$(field tokens_per_second <<<"$k")" -v ks="$(field stddev <<<"$k")" \
        -v tt="$(field tokens_per_second <<<"$t")" -v ts="$(field stddev <<<"$t")" \
        -v kr="$(field peak_rss_mb <<<"$k")" -v tr="$(field peak_rss_mb <<<"$t")" \
        -v kg="$(field gflops <<<"$k")" \
        -v kc="$(field cpu_seconds_per_step <<<"$k")" -v tc="$(field cpu_seconds_per_step <<<"$t")" 'BEGIN {
        peak = th * 2 * width * 2 * mhz / 1000
        printf "| %7d | %7.1f +- %-5.1f | %7.1f +- %-5.1f | %4.2fx | %8.0f MB | %6.0f MB | %6.1f of %5.1f (%4.1f%%)    | %6.2f / %-6.2f (%4.2fx) | %-15s |\n",
            th, kt, ks, tt, ts, kt / tt, kr, tr, kg, peak, 100 * kg / peak, kc, tc, tc / kc, load
    }'
done
echo
echo "GFLOP/step (useful work, no recomputation): $(field gflop_per_step <<<"$k")"
