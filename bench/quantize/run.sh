#!/usr/bin/env bash
# bench/quantize/run.sh [GGUF] — what quantizing a bf16 checkpoint at load costs (docs/models.md):
# perplexity of a fixed text and memory, for model.quantize none (bf16), q4_k and nf4.
#
# No real bf16 checkpoint is on the development machine, so the reference is built from a GGUF
# (default: the embedded SmolLM2-135M-Instruct, Q4_1) dequantized by transformers and saved as bf16
# safetensors (make_bf16_checkpoint.py): the "bf16" row is that dequantized Q4_1 model, and the
# other rows quantize it again. The text: the first 8,000 bytes of ../shared/eqbench3/
# scenario_prompts.txt, cut at the last whole line (about 1,900 tokens), scored as one window by
# `kindred score` (no BOS, no template). Per row: perplexity, its change against bf16, the
# frozen weights' size as loaded (all tensors; embeddings and norms stay bf16), peak RSS of the
# whole process, wall time of load + quantize + score. Then the peers (peer_nf4.py): transformers
# on the bf16 weights and bitsandbytes' NF4 round trip of the same Linear weights.
#
# Environment: KINDRED_BUILD (default build), DIR (default /tmp/kindred-bench-quantize), SHARED
# (default ../shared), THREADS (default 2), PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."

build="${KINDRED_BUILD:-build}"
dir="${DIR:-/tmp/kindred-bench-quantize}"
shared="${SHARED:-../shared}"
threads="${THREADS:-2}"
python="${PYTHON:-.venv/bin/python}"
gguf="${1:-${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
kindred="$build/src/cli/kindred"
[[ -x "$kindred" ]] || { echo "missing $kindred: cmake --build $build --target kindred" >&2; exit 1; }

mkdir -p "$dir"
reference="$dir/$(basename "$gguf" .gguf)-bf16"
[[ -f "$reference/model.safetensors" ]] || "$python" bench/quantize/make_bf16_checkpoint.py "$gguf" "$reference" >&2
text="$dir/text.txt"
head -c 8000 "$shared/eqbench3/scenario_prompts.txt" | sed '$d' > "$text"

echo "model: $reference (bf16 from $(basename "$gguf")); text: $text; threads $threads; $(uptime | sed 's/.*load/load/')"
printf '| quantize | perplexity | vs bf16 | frozen weights (MiB) | peak RSS (MiB) | load + score (s) |\n| --- | --- | --- | --- | --- | --- |\n'
base=""
for quantize in none q4_k nf4; do
    log="$dir/$quantize.log"
    /usr/bin/time -f 'rss_kb %M wall_s %e' "$kindred" score --model "$reference" --quantize "$quantize" \
        --threads "$threads" --file "$text" --json > "$dir/$quantize.json" 2> "$log"
    ppl=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['perplexity'])" "$dir/$quantize.json")
    tokens=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens'])" "$dir/$quantize.json")
    rss=$(awk '/^rss_kb/ {printf "%.0f", $2 / 1024}' "$log")
    wall=$(awk '/^rss_kb/ {print $4}' "$log")
    if [[ "$quantize" == none ]]; then
        base="$ppl"
        weights=$(du -m --apparent-size "$reference/model.safetensors" | cut -f1)
    else
        weights=$(grep -o 'frozen_weights_MiB [0-9.]*' "$log" | tail -1 | cut -d' ' -f2)
    fi
    delta=$("$python" -c "import sys; b, p = map(float, sys.argv[1:]); print(f'{100 * (p / b - 1):+.2f}%')" "$base" "$ppl")
    printf '| %s | %.4f | %s | %s | %s | %s |\n' "$quantize" "$ppl" "$delta" "$weights" "$rss" "$wall"
done
echo "($tokens tokens; $(uptime | sed 's/.*load/load/'))"
echo "peers: $("$python" bench/quantize/peer_nf4.py "$reference" "$text" 2>/dev/null | tail -1)"
