#!/usr/bin/env bash
# bench/quantize/speed.sh KINDRED [KINDRED...] — prefill and decode speed of a base quantized at load,
# for one or more kindred binaries (e.g. two builds before and after a kernel change) in the same
# run, interleaved rep by rep so that a change in the machine's load hits all of them alike.
#
# The model and text are run.sh's (the bf16 checkpoint made from the default GGUF; the first 2,000
# bytes of its text, cut at the last whole line, about 470 tokens, sent raw). Each rep is one
# `kindred generate --json` (greedy, fp32 products, 128 new tokens at most): its prefill and decode
# tokens/s and peak RSS. Prints the median of each per binary, and the load average before and after.
#
# Environment: QUANTIZE (default nf4), DIR (default /tmp/kindred-bench-quantize, as run.sh), SHARED
# (default ../shared), THREADS (default 2), REPS (default 5), PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
(($# > 0)) || { echo "usage: $0 KINDRED [KINDRED...]" >&2; exit 1; }

quantize="${QUANTIZE:-nf4}"
dir="${DIR:-/tmp/kindred-bench-quantize}"
shared="${SHARED:-../shared}"
threads="${THREADS:-2}"
reps="${REPS:-5}"
python="${PYTHON:-.venv/bin/python}"
gguf="${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf"

mkdir -p "$dir"
reference="$dir/$(basename "$gguf" .gguf)-bf16"
[[ -f "$reference/model.safetensors" ]] || "$python" bench/quantize/make_bf16_checkpoint.py "$gguf" "$reference" >&2
prompt=$(head -c 2000 "$shared/eqbench3/scenario_prompts.txt" | sed '$d')

echo "model: $reference --quantize $quantize; threads $threads; $reps reps; $(uptime | sed 's/.*load/load/')"
results="$dir/speed.tsv"
: > "$results"
for ((rep = 0; rep < reps; rep++)); do
    for kindred in "$@"; do
        log="$dir/speed.log"
        /usr/bin/time -f 'rss_kb %M' "$kindred" generate --model "$reference" --quantize "$quantize" --raw \
            --prompt "$prompt" --max-tokens 128 --temperature 0 --products fp32 --threads "$threads" --json \
            > "$dir/speed.json" 2> "$log"
        "$python" - "$kindred" "$dir/speed.json" "$log" >> "$results" <<'EOF'
import json, re, sys
kindred, reply, log = sys.argv[1:]
timings = json.load(open(reply))["timings"]
rss = int(re.search(r"rss_kb (\d+)", open(log).read()).group(1)) / 1024
print(f"{kindred}\t{timings['prefill_tokens_per_second']:.1f}\t{timings['decode_tokens_per_second']:.1f}\t{rss:.0f}")
EOF
    done
done
printf '| binary | prefill (tok/s) | decode (tok/s) | peak RSS (MiB) |\n| --- | --- | --- | --- |\n'
"$python" - "$results" "$@" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
for kindred in sys.argv[2:]:
    mine = [r for r in rows if r[0] == kindred]
    median = lambda i: statistics.median(float(r[i]) for r in mine)
    print(f"| {kindred} | {median(1):.1f} | {median(2):.1f} | {median(3):.0f} |")
EOF
echo "(medians of $reps; $(uptime | sed 's/.*load/load/'))"
