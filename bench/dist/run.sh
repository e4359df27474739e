#!/usr/bin/env bash
# bench/dist/run.sh — data-parallel SFT on one host: the same recipe on 1 process (THREADS threads)
# and on RANKS processes under mpirun (THREADS/RANKS threads each), same global batch, one after
# the other. Prints each run's wall time and tokens/s (the run's own count, padding included), the
# ratio, and the data-parallel run's mean all-reduce seconds per step (metrics.jsonl allreduce_s:
# the gradient and loss sums, including the wait for the slowest rank), with the load average.
# On one host the ranks share its cores, so expect no speed-up: this measures the overhead.
#
# Environment:
#   KINDRED_BUILD  build folder holding src/cli/kindred (default: build)
#   MODEL          model path or alias (default: default, SmolLM2-135M-Instruct Q4_1)
#   RANKS THREADS STEPS   (default 2 2 4)
#   ROWS SEQ RANK  rows per step (micro_batch 1 x grad_accumulation ROWS), max_seq_len, LoRA rank
#                  on q,k,v,o,gate,up,down (default 8 256 8, the demo's adapter)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${KINDRED_BUILD:-build}
kindred="$build/src/cli/kindred"
[ -x "$kindred" ] || { echo "bench/dist: $kindred not built (cmake --build $build --target kindred)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench/dist: mpirun not found (scripts/install-deps installs openmpi-bin)" >&2; exit 1; }
ranks=${RANKS:-2} threads=${THREADS:-2} steps=${STEPS:-4} rows=${ROWS:-8} seq=${SEQ:-256} rank=${RANK:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/recipe.yaml" <<YAML
model:
  path: ${MODEL:-default}
adapter:
  rank: $rank
  alpha: $((2 * rank))
  targets: [q, k, v, o, gate, up, down]
data:
  path: data/chat-smoke.jsonl
  max_seq_len: $seq
optimisation:
  max_steps: $steps
  micro_batch: 1
  grad_accumulation: $rows
logging:
  progress: false
output:
  dir: $work/runs
  checkpoint_every: 1000
YAML
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {  # name, launcher prefix, threads
  local start end
  start=$(date +%s.%N)
  $2 "$kindred" train sft --threads "$3" --config "$work/recipe.yaml" name="$1" > "$work/$1.log" 2>&1 \
    || { cat "$work/$1.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$1: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s wall; $(grep -o '[0-9]* tokens/s' "$work/$1.log")"
}
run one "" "$threads"
run parallel "mpirun -np $ranks --oversubscribe" "$((threads / ranks > 0 ? threads / ranks : 1))"
python3 - "$work/runs" <<'PY'
import json, sys
def records(name):
    return [json.loads(line) for line in open(f"{sys.argv[1]}/{name}/metrics.jsonl") if '"loss"' in line]
one, parallel = records("one"), records("parallel")
tps = lambda r: sum(x["tokens_per_s"] for x in r) / len(r)
print(f"tokens/s per step (mean): one {tps(one):.1f}, parallel {tps(parallel):.1f}, ratio {tps(parallel) / tps(one):.2f}")
reduce = [x["allreduce_s"] for x in parallel]
print(f"all-reduce per step: mean {1e3 * sum(reduce) / len(reduce):.1f} ms, min {1e3 * min(reduce):.1f} ms (includes waiting for the slower rank)")
print("largest loss difference:", max(abs(a["loss"] - b["loss"]) for a, b in zip(one, parallel)))
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
