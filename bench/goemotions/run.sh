#!/usr/bin/env bash
# The emotion head on the real GoEmotions dev split, one command: prepares ../shared/goemotions (or
# $GOEMOTIONS, a `kindred data fetch goemotions` folder) with the short system message, trains
# configs/goemotions-emotion.yaml once per recipe variant (heads.emotion_loss x
# heads.emotion_rebalance), and prints one table row per variant: the dev macro-F1 and micro-F1 in
# GoEmotions' 28 labels at the threshold chosen on dev (eval/multilabel.h, the last dev evaluation
# of the run), that threshold, training wall time, tokens/s, peak RSS and the load average; the
# GoEmotions paper's BERT-base (macro-F1 0.46 on test, threshold 0.3) is the row to beat.
# Every run shares one frozen-layer cache (<OUT>/runs/frozen-cache, train/frozen_cache.h), so the
# lower layers run once per example for all variants; a rerun resumes from what is there.
#
# Usage: bench/goemotions/run.sh
# Environment (defaults in brackets):
#   KINDRED [KINDRED_BUILD/src/cli/kindred]  KINDRED_BUILD [build]  GOEMOTIONS [../shared/goemotions]   OUT [runs/goemotions-bench]
#   TRAIN_EXAMPLES [all]    the first N comments of the prepared (shuffled) train split
#   STEPS [the recipe's]    optimisation.max_steps of every variant
#   VARIANTS ["sigmoid:sqrt_inverse_frequency sigmoid:none softmax:sqrt_inverse_frequency softmax:none"]
#   EXTRA [""]              more key=value overrides for every run (e.g. adapter.first_layer=28)
#   EVAL [0]                1: also score the first variant with `kindred eval emotion` on dev.tsv
set -euo pipefail
cd "$(dirname "$0")/../.."
kindred="${KINDRED:-${KINDRED_BUILD:-build}/src/cli/kindred}"
goemotions="${GOEMOTIONS:-../shared/goemotions}"
out="${OUT:-runs/goemotions-bench}"
variants="${VARIANTS:-sigmoid:sqrt_inverse_frequency sigmoid:none softmax:sqrt_inverse_frequency softmax:none}"
load() { cut -d' ' -f1-3 /proc/loadavg; }

mkdir -p "$out"
if [ ! -s "$out/data/dev.jsonl" ]; then
    "$kindred" data prepare --goemotions "$goemotions" --system-prompt "Name the emotions." --out "$out/data" >&2
fi
train="$out/data/train.jsonl"
if [ -n "${TRAIN_EXAMPLES:-}" ]; then
    train="$out/data/train-${TRAIN_EXAMPLES}.jsonl"
    head -n "$TRAIN_EXAMPLES" "$out/data/train.jsonl" > "$train"
fi
overrides=(data.path="$train" data.dev_path="$out/data/dev.jsonl" output.dir="$out/runs" evaluation.every=0)
[ -n "${STEPS:-}" ] && overrides+=(optimisation.max_steps="$STEPS")
# shellcheck disable=SC2206
[ -n "${EXTRA:-}" ] && overrides+=($EXTRA)

echo "Kindred $(git rev-parse --short HEAD), $(wc -l < "$train") training comments, dev $(wc -l < "$out/data/dev.jsonl"), $(nproc) cores"
echo "| variant (loss, rebalance) | dev macro-F1 | dev micro-F1 | threshold | train wall | tokens/s | peak RSS | load before / after |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
first_run=""
for variant in $variants; do
    loss=${variant%%:*}
    rebalance=${variant#*:}
    name="ge-${loss}-${rebalance}"
    [ -z "$first_run" ] && first_run="$out/runs/$name"
    before=$(load)
    /usr/bin/time -f "%e %M" -o "$out/$name.time" "$kindred" train sft --config configs/goemotions-emotion.yaml \
        name="$name" heads.emotion_loss="$loss" heads.emotion_rebalance="$rebalance" "${overrides[@]}" \
        > "$out/$name.log" 2>&1 || { tail -n 20 "$out/$name.log"; exit 1; }
    read -r wall rss < "$out/$name.time"
    python3 - "$out/runs/$name/metrics.jsonl" "$loss, $rebalance" "$wall" "$rss" "$before" "$(load)" <<'EOF'
import json, sys
path, variant, wall, rss, before, after = sys.argv[1:]
dev, tokens, seconds = None, 0.0, 0.0
for line in open(path):
    record = json.loads(line)
    if "dev" in record:
        dev = record["dev"]
    elif "tokens_per_s" in record and record.get("tokens_per_s"):
        tokens = record["tokens_per_s"]
if dev is None:
    sys.exit(f"{path}: no dev evaluation")
print(f"| {variant} | {dev['emotion_threshold_macro_f1']:.4f} | {dev['emotion_threshold_micro_f1']:.4f} | "
      f"{dev['emotion_threshold']:.2f} | {float(wall) / 60:.1f} min | {tokens:.0f} (last step) | "
      f"{int(rss) / 1024:.0f} MB | {before} / {after} |")
EOF
done
echo "| GoEmotions paper, BERT-base (test split, threshold 0.3) | 0.46 | | 0.30 | | | | |"
if [ "${EVAL:-0}" = 1 ]; then
    "$kindred" eval emotion --adapter "$first_run/adapter" --data "$goemotions/dev.tsv" --json > "$out/eval-dev.json"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('kindred eval emotion', sys.argv[2], 'dev.tsv: macro-F1', round(r['macro_f1'], 4), 'micro-F1', round(r['micro_f1'], 4))" \
        "$out/eval-dev.json" "$first_run"
fi
