#!/usr/bin/env bash
# bench/decoding/sweep.sh RUN_DIR — the decoding sweep behind infer::recommended_sampling()
# (docs/controller.md, "Decoding"): the opening user message of every dev chat conversation of a
# `kindred demo` run (RUN_DIR/data/dev.jsonl), answered by the base model and the run's adapter
# (RUN_DIR/adapter) under each sampling setting below, plain (no controller), seed 0, 120 tokens;
# prints the checker's rates per setting: repetition loops, the three properties, advice, tokens.
# Run by hand; takes a few minutes per setting on two cores. KINDRED=path/to/kindred overrides the
# binary; OUT=folder keeps the prompts and JSON results (default /tmp/kindred-decoding-sweep).
set -euo pipefail
run=${1:?usage: bench/decoding/sweep.sh RUN_DIR}
kindred=${KINDRED:-build/src/cli/kindred}
out=${OUT:-/tmp/kindred-decoding-sweep}
mkdir -p "$out"
style=$(sed -n 's/^  style: "\?\([^"]*\)"\?$/\1/p' "$run/config.yaml" | head -1)
style_flag=()
[ -n "$style" ] && style_flag=(--style "$style")

# Dev prompts in the controller prompt-set format: the conversation up to its first user turn.
jq -c 'select(.task == "chat")
       | {id: (.id | gsub("[^A-Za-z0-9_.-]"; "-")), kind: "empathy",
          messages: (.messages | .[0:(map(.role) | index("user")) + 1] | map({role, content})),
          emotions: .emotion.labels, expect: "dev opening"}' "$run/data/dev.jsonl" > "$out/dev-prompts.jsonl"
echo "dev prompts: $(wc -l < "$out/dev-prompts.jsonl") (load average: $(cut -d' ' -f1-3 /proc/loadavg))"

# name | sampling flags
settings=(
  "greedy|--temperature 0 --repeat-penalty 1"
  "greedy rep1.15|--temperature 0 --repeat-penalty 1.15 --repeat-last-n 128"
  "T0.7 p0.9|--temperature 0.7 --top-p 0.9 --min-p 0.05 --repeat-penalty 1"
  "T0.7 p0.9 rep1.1|--temperature 0.7 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1 --repeat-last-n 128"
  "T0.7 p0.9 rep1.15|--temperature 0.7 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.15 --repeat-last-n 128"
  "T0.7 p0.9 rep1.3|--temperature 0.7 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.3 --repeat-last-n 128"
  "T1.0 p0.9 rep1.15|--temperature 1.0 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.15 --repeat-last-n 128"
  "T0.5 p0.9 rep1.15|--temperature 0.5 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.15 --repeat-last-n 128"
)
printf '%-20s %-6s %6s %6s %8s %9s %6s %7s %7s %6s\n' setting model loop ack feeling question all3 advice tokens s
for entry in "${settings[@]}"; do
  name=${entry%%|*}
  read -r -a flags <<< "${entry#*|}"
  file="$out/$(echo "$name" | tr ' ' '_').json"
  "$kindred" eval controller --model default --adapter "$run/adapter" "${style_flag[@]}" --prompts "$out/dev-prompts.jsonl" \
    --plain-only --json --seed 0 --max-tokens 120 --top-k 40 "${flags[@]}" > "$file" 2>/dev/null
  jq -r --arg name "$name" '.[] | [$name, .model, .without_controller.repetition_loop, .without_controller.acknowledgment,
      .without_controller.named_feeling, .without_controller.question, .without_controller.all_three,
      .without_controller.advice, .without_controller.tokens, .without_controller.seconds] | @tsv' "$file" |
    awk -F'\t' '{printf "%-20s %-6s %6.2f %6.2f %8.2f %9.2f %6.2f %7.2f %7.1f %6.2f\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
