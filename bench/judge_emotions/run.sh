#!/usr/bin/env bash
# The judge consistency check against a real local judge, one command: starts `kindred serve` with
# the judge model on a free loopback port, runs `kindred eval judge-emotions` on SAMPLE comments of
# the real GoEmotions dev split, stops the server, and prints one table row: the judge's macro-F1
# and micro-F1, the always-neutral floor, comments labelled / failed, judge calls, unparsed answers,
# tokens, wall time and the load average before and after. The run directory resumes: a rerun with
# the same settings asks nothing already answered.
#
# Usage: bench/judge_emotions/run.sh
# Environment (defaults in brackets):
#   KINDRED [KINDRED_BUILD/src/cli/kindred]  KINDRED_BUILD [build]
#   JUDGE [gemma3-270m]   the judge model (`kindred serve --model`; `default` is SmolLM2-135M)
#   GOEMOTIONS [../shared/goemotions]   SAMPLE [200]   SEED [0]   OUT [runs/judge-emotions-bench]
#   THREADS [2]   the server's CPU threads
#   MAX_TOKENS [64]   --judge-max-tokens: the asked JSON takes about 15 tokens; a small judge that
#                     misses it babbles to the budget, and 512 tokens a call (the command's default,
#                     room for a reasoning model's <think>) costs minutes per comment on 2 cores
#   ATTEMPTS [3]      --judge-attempts
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
kindred="${KINDRED:-${KINDRED_BUILD:-build}/src/cli/kindred}"
require_built "$kindred"
judge="${JUDGE:-gemma3-270m}"
out="${OUT:-runs/judge-emotions-bench}/${judge//\//_}-s${SAMPLE:-200}-seed${SEED:-0}-t${MAX_TOKENS:-64}-a${ATTEMPTS:-3}"
mkdir -p "$(dirname "$out")"

port_file="$(mktemp)"
"$kindred" serve --model "$judge" --model-name judge --port 0 --parallel 1 --ctx 2048 --threads "${THREADS:-2}" --quiet \
    > "$port_file" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$port_file"' EXIT
url=""
for _ in $(seq 1 600); do
    port="$(sed -nE 's/.*127\.0\.0\.1:([0-9]+).*/\1/p' "$port_file" | head -n 1)"
    if [[ -n "$port" ]] && curl -sf "http://127.0.0.1:$port/health" > /dev/null; then url="http://127.0.0.1:$port/v1"; break; fi
    kill -0 "$server" 2>/dev/null || { cat "$port_file"; exit 1; }
    sleep 0.5
done
[[ -n "$url" ]] || { echo "the judge server did not come up: $(cat "$port_file")" >&2; exit 1; }

resume=()
[[ -f "$out/config.json" ]] && resume=(--resume)
before=$(loadavg)
start=$(date +%s.%N)
result="$("$kindred" eval judge-emotions --judge-url "$url" --judge-model judge --data "${GOEMOTIONS:-../shared/goemotions}" \
    --sample "${SAMPLE:-200}" --seed "${SEED:-0}" --judge-max-tokens "${MAX_TOKENS:-64}" --judge-attempts "${ATTEMPTS:-3}" \
    --out "$out" "${resume[@]}" --json)"
wall=$(echo "$(date +%s.%N) - $start" | bc)
RESULT="$result" python3 - "$judge" "$wall" "$before" "$(loadavg)" <<'EOF_PY'
import json, os, sys
judge, wall, before, after = sys.argv[1:]
r = json.loads(os.environ["RESULT"])
f = lambda s: "n/a" if s is None else f"{s['macro_f1']:.4f} / {s['micro_f1']:.4f}"
print("| judge | macro-F1 / micro-F1 | always neutral | labelled / failed of sample | calls (this run) | unparsed answers | prompt + completion tokens | wall | load before / after |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
print(f"| {judge} | {f(r['judge'])} | {f(r['neutral_baseline'])} | {r['labelled']} / {r['failed']} of {r['sample']} | "
      f"{r['answers_total']} ({r['judge_calls']}) | {r['unparsed_answers']} | {r['prompt_tokens']} + {r['completion_tokens']} | "
      f"{float(wall):.0f} s | {before} / {after} |")
EOF_PY
