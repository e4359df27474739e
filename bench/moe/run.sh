#!/usr/bin/env bash
# bench/moe/run.sh [MODEL...] — the real-size mixture-of-experts models on this machine, from
# shape-true random-weight GGUFs (kindred_make_shape_true: the real tensor list, shapes, types and
# metadata; MODEL is gpt-oss-20b and/or qwen3-30b-a3b, default both). For each: peak RSS after
# loading, prefill (ppN) and decode (tgN) tokens/s, and LoRA training (one row of TRAIN_SEQ tokens,
# adapters on attention and both expert stacks, activation checkpointing) tokens/s with its peak
# RSS (kindred_bench_moe); then llama.cpp's llama-bench on the same file for pp/tg when
# LLAMA_CPP_DIR is set (see bench/inference/run.sh for building it). There is no CPU peer for
# training; bench/README.md quotes what Unsloth publishes for GPU memory.
#
# Environment:
#   KINDRED_BUILD  build folder holding bench/moe/kindred_{make_shape_true,bench_moe} (default: build)
#   DIR            where the GGUFs are written (default: /tmp/kindred-shape-true); about 12 GB for
#                  gpt-oss-20b and 17 GB for qwen3-30b-a3b. KEEP=0 deletes each after its run.
#   SHARED         the shared data folder with tokenizers/{gpt-oss,qwen3}/tokenizer.json (default:
#                  ../shared), written into the files so llama.cpp can load them
#   THREADS, PP, TG, TRAIN_SEQ, TRAIN_STEPS  (defaults 2, 64, 16, 512, 1)
#   PRODUCTS       int8|fp32: Kindred's inference products (default int8, as `kindred generate` on CPUs with AMX-INT8)
#   OUT            folder for each run's JSON lines (default: /tmp/bench-moe), summarised in a table at the end
set -euo pipefail
cd "$(dirname "$0")/../.."

build="${KINDRED_BUILD:-build}"
dir="${DIR:-/tmp/kindred-shape-true}"
out="${OUT:-/tmp/bench-moe}"
shared="${SHARED:-../shared}"
threads="${THREADS:-2}"; pp="${PP:-64}"; tg="${TG:-16}"
train_seq="${TRAIN_SEQ:-512}"; train_steps="${TRAIN_STEPS:-1}"
products="${PRODUCTS:-int8}"
make="$build/bench/moe/kindred_make_shape_true"
bench="$build/bench/moe/kindred_bench_moe"
for binary in "$make" "$bench"; do
    [[ -x "$binary" ]] || { echo "missing $binary: cmake --build $build --target $(basename "$binary")" >&2; exit 1; }
done
source bench/llama_bench.sh
llama_bench=$(find_llama_bench)
[[ -n "$llama_bench" ]] || echo "LLAMA_CPP_DIR not set or without llama-bench: measuring Kindred only" >&2

mkdir -p "$dir" "$out"
rm -f "$out"/*.jsonl
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(gpt-oss-20b qwen3-30b-a3b)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo) RAM; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for model in "${models[@]}"; do
    case "$model" in
        gpt-oss-20b) family=gpt-oss ;;
        qwen3-30b-a3b) family=qwen3 ;;
        *) echo "unknown model $model (gpt-oss-20b or qwen3-30b-a3b)" >&2; exit 1 ;;
    esac
    file="$dir/$model.shape-true.gguf"
    if [[ ! -f "$file" ]]; then
        tokenizer=()
        [[ -f "$shared/tokenizers/$family/tokenizer.json" ]] && tokenizer=(--tokenizer-dir "$shared/tokenizers/$family")
        /usr/bin/time -f "generator: %e s, peak RSS %M KB" "$make" "$model" "$file" "${tokenizer[@]}"
    fi
    echo
    echo "== $model ($(du -h "$file" | cut -f1)) =="
    "$bench" "$file" --threads "$threads" --pp "$pp" --tg "$tg" --train-seq "$train_seq" --train-steps "$train_steps" --products "$products" |
        tee "$out/$model.kindred.jsonl"
    if [[ -n "$llama_bench" ]]; then
        echo "load average before llama.cpp: $(cut -d' ' -f1-3 /proc/loadavg)"
        # shellcheck disable=SC2086  # LLAMA_BENCH_ARGS is a list of words (bench/llama_bench.sh)
        "$llama_bench" -m "$file" -t "$threads" -p "$pp" -n "$tg" -r 1 ${LLAMA_BENCH_ARGS:-} -o jsonl 2>/dev/null | tee "$out/$model.llama.jsonl" ||
            echo "llama-bench failed on $file"
        echo "load average after llama.cpp: $(cut -d' ' -f1-3 /proc/loadavg)"
    fi
    [[ "${KEEP:-1}" == 1 ]] || rm -f "$file"
done

# One row per model from the lines kept above: Kindred beside llama-bench, the ratio, training.
echo
OUT_DIR="$out" MODELS="${models[*]}" PP="$pp" TG="$tg" python3 - <<'PY'
import json, os
out, pp, tg = os.environ["OUT_DIR"], os.environ["PP"], os.environ["TG"]
def lines(path):
    try:
        return [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    except (OSError, ValueError):
        return []
print(f"| model | peak RSS after warm-up (GB) | pp{pp} Kindred / llama.cpp tok/s | ratio | tg{tg} Kindred / llama.cpp tok/s | ratio "
      "| train tok/s | train peak RSS (GB) |")
print("|" + " --- |" * 8)
for model in os.environ["MODELS"].split():
    kindred = {line["phase"]: line for line in lines(f"{out}/{model}.kindred.jsonl")}
    llama = {("pp" if line["n_prompt"] else "tg"): line["avg_ts"] for line in lines(f"{out}/{model}.llama.jsonl")}
    def pair(phase):
        mine = kindred.get(f"{phase}{pp if phase == 'pp' else tg}", {}).get("tokens_per_second")
        theirs = llama.get(phase)
        text = f"{mine:.2f}" if mine else "-"
        text += f" / {theirs:.2f}" if theirs else " / -"
        return text, (f"{mine / theirs:.2f}" if mine and theirs else "-")
    pp_text, pp_ratio = pair("pp")
    tg_text, tg_ratio = pair("tg")
    warm = kindred.get("warmup", {}).get("peak_rss_mb")
    train = kindred.get("train", {})
    gb = lambda mb: f"{mb / 1024:.1f}" if mb else "-"
    train_rate = f"{train['tokens_per_second']:.2f}" if train else "-"
    print(f"| {model} | {gb(warm)} | {pp_text} | {pp_ratio} | {tg_text} | {tg_ratio} | {train_rate} | {gb(train.get('peak_rss_mb'))} |")
PY
