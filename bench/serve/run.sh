#!/usr/bin/env bash
# bench/serve/run.sh [MODEL] — kindred serve against llama.cpp's llama-server on the same GGUF, same
# load, same settings, in one run, loopback only, bounded: for each count in CLIENTS (default
# "1 4 16"), that many concurrent clients send chat completions for SECONDS_PER_POINT (default
# 60) seconds (requests still running then finish; MAX_TOKENS 64 per reply, temperature 0.8,
# top-k 40, top-p 0.95, min-p 0.05, a seed per request) to one server started with PARALLEL
# (default: the largest count) sequences of CTX (default 1024) tokens each and THREADS (default 2)
# threads. Prints one JSON line per server and client count (requests, failures, aggregate
# completion tokens/s, p50/p95 latency) with the load average before it, then a table with the
# throughput ratio per client count (goal >= 1).
#
# Environment:
#   KINDRED_BUILD  Kindred build folder (default: build) with src/cli/kindred and
#                  bench/serve/kindred_bench_serve_load.
#   LLAMA_SERVER   llama-server built from source outside this repo (e.g. /work/third_party_bench/
#                  llama-build/bin/llama-server); without it only Kindred is measured.
#   LLAMA_SERVER_ARGS  extra llama-server arguments (split on spaces), e.g. `--no-repack` where
#                  llama.cpp's AMX weight repacking crashes (bench/llama_bench.sh)
#   OUT            folder for the JSON lines (default: /tmp/bench-serve).
set -euo pipefail
cd "$(dirname "$0")/../.."

model="${1:-default}"
client_counts="${CLIENTS:-1 4 16}"
seconds="${SECONDS_PER_POINT:-60}"
max_tokens="${MAX_TOKENS:-64}"
largest=$(tr ' ' '\n' <<<"$client_counts" | sort -n | tail -1)
parallel="${PARALLEL:-$largest}"
out="${OUT:-/tmp/bench-serve}"
mkdir -p "$out"
rm -f "$out"/*.json
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

measure() {  # name port model-id: every client count against the running server
    for clients in $client_counts; do
        echo "== $1, $clients clients: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
        "$load" "$2" "$3" "$clients" "$seconds" "$max_tokens" | tee "$out/$1-$clients.json" || true
    done
}

port=18181
"$kindred" serve --model "$model" --model-name bench --host 127.0.0.1 --port "$port" --parallel "$parallel" \
    --ctx "$ctx" --queue "$largest" --threads "$threads" --quiet &
server_pid=$!
wait_healthy "$port"
measure kindred "$port" bench
stop_server

servers="kindred"
if [[ -n "${LLAMA_SERVER:-}" ]]; then
    port=18182
    # -c is the total context, split evenly across the -np slots; --jinja renders the GGUF's own template.
    # shellcheck disable=SC2086  # LLAMA_SERVER_ARGS is a list of words
    "$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$port" -np "$parallel" -c $((ctx * parallel)) -t "$threads" \
        --jinja --no-webui --log-disable ${LLAMA_SERVER_ARGS:-} &
    server_pid=$!
    wait_healthy "$port"
    measure llama-server "$port" bench
    stop_server
    servers="kindred llama-server"
fi
OUT_DIR="$out" CLIENT_COUNTS="$client_counts" SERVERS="$servers" python3 - <<'PY'
import json, os
out, counts, servers = os.environ["OUT_DIR"], os.environ["CLIENT_COUNTS"].split(), os.environ["SERVERS"].split()
def point(server, clients):
    try:
        return json.load(open(f"{out}/{server}-{clients}.json"))
    except (OSError, ValueError):
        return None
columns = ["clients"] + [f"{s} tokens/s (p50/p95 s, failures)" for s in servers] + (["ratio"] if len(servers) > 1 else [])
print("| " + " | ".join(columns) + " |")
print("|" + " --- |" * len(columns))
for clients in counts:
    row, rates = [], []
    for server in servers:
        p = point(server, clients)
        rates.append(p["tokens_per_second"] if p else None)
        row.append(f"{p['tokens_per_second']:.1f} ({p['latency_p50_s']:.2f}/{p['latency_p95_s']:.2f}, {p['failures']})" if p else "no result")
    ratio = f" | {rates[0] / rates[1]:.2f}" if len(rates) > 1 and all(rates) else (" | -" if len(servers) > 1 else "")
    print(f"| {clients} | " + " | ".join(row) + ratio + " |")
PY
