#!/usr/bin/env bash
# `kindred data prepare` at full size: wall time, CPU time and peak RSS (GNU time) on
#  1. the real GoEmotions train + dev (../shared/goemotions: 43,410 + 5,426 comments; no test split),
#  2. synthetic EmpatheticDialogues + ESConv of the released sizes (bench/data/make_synthetic.py),
#  3. all three together,
# each printed with the load average, since the machine is shared. Usage: bench/data/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
kindred="${1:-build}/src/cli/kindred"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/data/make_synthetic.py "$work/synthetic"
du -sh "$work/synthetic/empatheticdialogues" "$work/synthetic/esconv/ESConv.json"
measure() {
    local name=$1
    shift
    /usr/bin/time -f "$name: %e s wall, %U s user, %S s system, max RSS %M KB" "$kindred" data prepare "$@" \
        --out "$work/out-$name" > /dev/null 2> "$work/$name.log" || { cat "$work/$name.log"; exit 1; }
    tail -n 1 "$work/$name.log"
    echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg); shards: $(wc -l < "$work/out-$name/train.jsonl") train, $(wc -l < "$work/out-$name/dev.jsonl") dev, $(wc -l < "$work/out-$name/test.jsonl") test lines"
}
measure goemotions --goemotions ../shared/goemotions
measure ed-esconv --ed "$work/synthetic/empatheticdialogues" --esconv "$work/synthetic/esconv/ESConv.json"
measure all --ed "$work/synthetic/empatheticdialogues" --esconv "$work/synthetic/esconv/ESConv.json" --goemotions ../shared/goemotions
