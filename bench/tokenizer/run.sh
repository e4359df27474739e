#!/usr/bin/env bash
# Encode throughput, Kindred vs the Python `tokenizers` package, same text, same run.
# Usage: bench/tokenizer/run.sh [build-dir] [repetitions]   (from the project root)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
reps="${2:-5}"
model="${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
corpus="$root/tests/goldens/tokenizer/corpus.jsonl"
python="${PYTHON:-$root/.venv/bin/python}"

cmake --build "$build" -j2 --target bench_tokenizer >/dev/null
kindred_out="$("$build/bench/tokenizer/bench_tokenizer" "$model" "$corpus" "$reps")"
# Single-threaded encode on both sides; encode_batch uses tokenizers' own thread pool.
python_out="$("$python" "$root/bench/tokenizer/bench_tokenizers.py" "$model" "$corpus" "$reps" 2>/dev/null)"
echo "$kindred_out"
echo "$python_out"
awk -v k="$kindred_out" -v p="$python_out" 'BEGIN {
    n = split(k "\n" p, rows, "\n")
    for (i = 1; i <= n; i++) { split(rows[i], f, " "); rate[f[1]] = f[2]; count[f[1]] = f[3] }
    if (count["kindred_encode_warm"] != count["tokenizers_encode_warm"]) {
        print "token counts differ: " count["kindred_encode_warm"] " vs " count["tokenizers_encode_warm"]; exit 1
    }
    printf "English text, %s tokens, single-threaded encode per line:\n", count["kindred_encode_warm"]
    printf "  warm cache: Kindred %.2f MB/s, tokenizers %.2f MB/s, ratio %.2fx\n",
        rate["kindred_encode_warm"], rate["tokenizers_encode_warm"], rate["kindred_encode_warm"] / rate["tokenizers_encode_warm"]
    printf "  cold cache: Kindred %.2f MB/s, tokenizers %.2f MB/s, ratio %.2fx\n",
        rate["kindred_encode_cold"], rate["tokenizers_encode_cold"], rate["kindred_encode_cold"] / rate["tokenizers_encode_cold"]
    printf "  (tokenizers encode_batch, its thread pool: %.2f MB/s)\n", rate["tokenizers_encode_batch"]
}'
