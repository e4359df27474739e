#!/usr/bin/env bash
# bench/serve/run.sh [MODEL] — kindred serve against llama.cpp's llama-server on the same GGUF, same
# load, same settings, in one run, loopback only, bounded: CLIENTS (default 16) concurrent clients
# send chat completions for SECONDS (default 60) seconds each server (MAX_TOKENS 64 per reply,
# temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, a seed per request), both servers with PARALLEL
# (default CLIENTS) sequences of CTX (default 1024) tokens each and THREADS (default 2) threads.
# Prints one JSON line per server (requests, failures, aggregate completion tokens/s, p50/p95
# latency), the load average before each, and the throughput ratio (goal >= 1).
#
# Environment:
#   KINDRED_BUILD  Kindred build folder (default: build) with src/cli/kindred and
#                  bench/serve/kindred_bench_serve_load.
#   LLAMA_SERVER   llama-server built from source outside this repo (e.g. /work/third_party_bench/
#                  llama-build/bin/llama-server); without it only Kindred is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."

model="${1:-default}"
clients="${CLIENTS:-16}"
seconds="${SECONDS_PER_SERVER:-60}"
max_tokens="${MAX_TOKENS:-64}"
parallel="${PARALLEL:-$clients}"
ctx="${CTX:-1024}"
threads="${THREADS:-2}"
build="${KINDRED_BUILD:-build}"
kindred="$build/src/cli/kindred"
load="$build/bench/serve/kindred_bench_serve_load"
if [[ "$model" == default ]]; then
    model="${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
[[ -f "$model" ]] || { echo "model not found: $model" >&2; exit 1; }
for binary in "$kindred" "$load"; do
    [[ -x "$binary" ]] || { echo "missing $binary: build Kindred first (KINDRED_BUILD)" >&2; exit 1; }
done

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

wait_healthy() {  # port
    for _ in $(seq 1 600); do
        if curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not become healthy" >&2
    return 1
}

measure() {  # name port model-id
    echo "== $1: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$load" "$2" "$3" "$clients" "$seconds" "$max_tokens" | tee "/tmp/bench-serve-$1.json"
}

port=18181
"$kindred" serve --model "$model" --model-name bench --host 127.0.0.1 --port "$port" --parallel "$parallel" \
    --ctx "$ctx" --queue "$clients" --threads "$threads" --quiet &
server_pid=$!
wait_healthy "$port"
measure kindred "$port" bench || true
stop_server

if [[ -n "${LLAMA_SERVER:-}" ]]; then
    port=18182
    # -c is the total context, split evenly across the -np slots; --jinja renders the GGUF's own template.
    "$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$port" -np "$parallel" -c $((ctx * parallel)) -t "$threads" \
        --jinja --no-webui --log-disable &
    server_pid=$!
    wait_healthy "$port"
    measure llama-server "$port" bench || true
    stop_server
    python3 - <<'PY'
import json
k = json.load(open("/tmp/bench-serve-kindred.json"))
l = json.load(open("/tmp/bench-serve-llama-server.json"))
print(f"aggregate tokens/s: kindred {k['tokens_per_second']:.1f}, llama-server {l['tokens_per_second']:.1f}, "
      f"ratio {k['tokens_per_second'] / l['tokens_per_second']:.2f} (goal >= 1)")
print(f"latency p50/p95 s: kindred {k['latency_p50_s']:.2f}/{k['latency_p95_s']:.2f}, "
      f"llama-server {l['latency_p50_s']:.2f}/{l['latency_p95_s']:.2f}; failures {k['failures']} / {l['failures']}")
PY
fi
