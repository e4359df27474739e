#!/usr/bin/env bash
# bench/dpo/run.sh [MODEL] — DPO step throughput, Kindred vs TRL's DPOTrainer + PEFT on CPU torch,
# in the same run, one after the other, for each thread count in THREADS:
#   one optimizer step = PAIRS pairs of random ids (a PROMPT-token prompt, chosen and rejected
#   completions of COMPLETION tokens), the sigmoid DPO loss against reference log-probs computed
#   once before timing, forward + backward of both sequences of every pair, clip_grad_norm(1.0),
#   AdamW; LoRA r=RANK, alpha=2·RANK on q,k,v,o,gate,up,down; fp32 on both sides; one untimed
#   warm-up step, then STEPS timed steps: mean sequence tokens/s +- stddev over the steps.
# Prints tokens/s of each, the ratio (goal >= 2x), each process's peak RSS and CPU seconds per step,
# with the load average before and after each pair of runs. Torch runs dequantized fp32 weights;
# Kindred keeps the GGUF's Q4_1.
#
# Environment:
#   KINDRED_BUILD  build folder holding bench/dpo/kindred_bench_dpo (default: build)
#   PYTHON         the interpreter with torch, transformers, peft, trl, gguf (default: .venv/bin/python)
#   THREADS        thread counts to measure (default: "2 1")
#   PAIRS PROMPT COMPLETION STEPS RANK   (default 4 192 64 3 16)
set -euo pipefail
cd "$(dirname "$0")/../.."

source bench/lib.sh
model="$(resolve_model "${1:-default}")"
build="${KINDRED_BUILD:-build}"
python="${PYTHON:-.venv/bin/python}"
thread_counts="${THREADS:-2 1}"
pairs="${PAIRS:-4}"
prompt="${PROMPT:-192}"
completion="${COMPLETION:-64}"
steps="${STEPS:-3}"
rank="${RANK:-16}"
bench="$build/bench/dpo/kindred_bench_dpo"
require_built "$bench"
require_python "$python" torch transformers peft trl gguf

echo "model: $model"
echo "step: $pairs pairs x (prompt $prompt + 2 completions of $completion tokens) = $((2 * pairs * (prompt + completion))) sequence tokens, sigmoid DPO, LoRA r=$rank alpha=$((2 * rank)), $steps timed steps after 1 warm-up, fp32"
echo "load average before: $(loadavg)"

results=()
for threads in $thread_counts; do
    before=$(loadavg)
    k=$("$bench" "$model" --threads "$threads" --pairs "$pairs" --prompt "$prompt" --completion "$completion" \
        --steps "$steps" --rank "$rank")
    t=$("$python" bench/dpo/bench_dpo_trl.py "$model" --threads "$threads" --pairs "$pairs" --prompt "$prompt" \
        --completion "$completion" --steps "$steps" --rank "$rank" 2>/dev/null | tail -n 1)
    echo "$k"
    echo "$t"
    results+=("$threads|$k|$t|$before|$(loadavg)")
done

echo
printf '| threads | Kindred tok/s    | TRL tok/s        | ratio | Kindred RSS | TRL RSS  | CPU s/step K / TRL     | load before     | load after      |\n'
printf '| ------- | ---------------- | ---------------- | ----- | ----------- | -------- | ---------------------- | --------------- | --------------- |\n'
for r in "${results[@]}"; do
    IFS='|' read -r threads k t before after <<<"$r"
    awk -v th="$threads" -v before="$before" -v after="$after" \
        -v kt="$(field tokens_per_second <<<"$k")" -v ks="$(field stddev <<<"$k")" \
        -v tt="$(field tokens_per_second <<<"$t")" -v ts="$(field stddev <<<"$t")" \
        -v kr="$(field peak_rss_mb <<<"$k")" -v tr="$(field peak_rss_mb <<<"$t")" \
        -v kc="$(field cpu_seconds_per_step <<<"$k")" -v tc="$(field cpu_seconds_per_step <<<"$t")" 'BEGIN {
        printf "| %7d | %7.1f +- %-5.1f | %7.1f +- %-5.1f | %4.2fx | %8.0f MB | %5.0f MB | %6.2f / %-6.2f (%4.2fx) | %-15s | %-15s |\n",
            th, kt, ks, tt, ts, kt / tt, kr, tr, kc, tc, tc / kc, before, after
    }'
done
