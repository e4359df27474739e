#!/usr/bin/env bash
# bench/inference/run.sh [MODEL] — Kindred vs llama.cpp on the same GGUF, in the same run:
#   pp512  prompt processing (one batch of 512 tokens on an empty cache), tokens/s
#   tg128  decode (128 single-token steps from an empty cache), tokens/s
# both with THREADS (default 2) threads; the machine's read bandwidth (a STREAM-like sum, 1 and
# THREADS threads) and Kindred's decode as a fraction of it (bytes of weights + KV cache read per
# token x tokens/s; goal >= 80%); Kindred's GFLOP/s against the machine's fp32 peak
# (cores x 2 FMA units x 8 floats (AVX2; 16 with AVX-512) x 2 flops x clock) and the peak RSS of a short piped
# `kindred chat` session (goal < 300 MB).
#
# Environment:
#   KINDRED_BUILD  Kindred build folder (default: build) holding src/cli/kindred and
#                  bench/inference/kindred_bench_inference (scripts/build makes both).
#   KINDRED        the kindred binary to run `chat` with (default: $KINDRED_BUILD/src/cli/kindred).
#   LLAMA_CPP_DIR  a llama.cpp checkout built with `cmake -B build -DGGML_NATIVE=ON && cmake
#                  --build build --target llama-bench`; its llama-bench is looked for in
#                  build/bin/, bin/ or the folder itself. Without it only Kindred is measured.
#   LLAMA_BENCH_ARGS  extra llama-bench arguments (bench/llama_bench.sh), e.g. `--repack 0`
#   THREADS, REPS  (default 2 and 3)
#   PRODUCTS       int8|fp32: Kindred's products (default int8; `kindred generate` defaults to fp32 on CPUs without AMX-INT8; the chat RSS run too)
#   KV_CACHE       f32|f16|q8_0: Kindred's KV cache element type (default f32, as `kindred generate --kv-cache`; the
#                  chat RSS run too). llama-bench's own is set through LLAMA_BENCH_ARGS (`-ctk q8_0 -ctv q8_0 -fa 1`).
#   DEPTH          tokens already in the cache when pp512 and tg128 start (default 0; llama-bench's -d, which
#                  LLAMA_BENCH_ARGS must then give too): decode at a long context, where the KV cache's type matters
#   KINDRED_GEMM   openblas|avx2|avx512 forces Kindred's fp32 GEMM path (default: the best the CPU runs)
#   OPENBLAS_CORETYPE  e.g. Prescott: simulates a CPU that OpenBLAS's model table does not know
#                  (Kindred then runs its own GEMM instead; the "Kindred ran" line says what ran)
set -euo pipefail
cd "$(dirname "$0")/../.."

model="${1:-default}"
threads="${THREADS:-2}"
reps="${REPS:-3}"
products="${PRODUCTS:-int8}"
kv_cache="${KV_CACHE:-f32}"
depth="${DEPTH:-0}"
build="${KINDRED_BUILD:-build}"
kindred="${KINDRED:-$build/src/cli/kindred}"
bench="$build/bench/inference/kindred_bench_inference"
if [[ "$model" == default ]]; then
    model="${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
[[ -f "$model" ]] || { echo "model not found: $model (scripts/fetch-default-model fetches the default)" >&2; exit 1; }
for binary in "$kindred" "$bench"; do
    [[ -x "$binary" ]] || { echo "missing $binary: build Kindred first (scripts/build, or set KINDRED_BUILD)" >&2; exit 1; }
done

source bench/llama_bench.sh
llama_bench=$(find_llama_bench)
if [[ -z "$llama_bench" ]]; then
    cat >&2 <<'EOF'
llama.cpp not found: set LLAMA_CPP_DIR to a llama.cpp checkout outside this repository, built with
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON && cmake --build build -j2 --target llama-bench
(on CPUs that report AMX but whose kernel does not grant it, add
  -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' and the same CMAKE_CXX_FLAGS).
Measuring Kindred only.
EOF
fi

# Clock in GHz: the highest "cpu MHz" the kernel reports (lscpu's max when it has one).
mhz=$(lscpu 2>/dev/null | awk -F: '/CPU max MHz/ {gsub(/ /, "", $2); print $2; exit}')
[[ -n "$mhz" ]] || mhz=$(awk -F: '/^cpu MHz/ {if ($2 > m) m = $2} END {print m}' /proc/cpuinfo)
# Kindred's GEMM uses AVX-512 where the CPU has it (kernels/cpu/gemm_f32.h), so the peak counts its width too.
if grep -qw avx512f /proc/cpuinfo; then width=16; isa="AVX-512+FMA"; else width=8; isa="AVX2+FMA"; fi
peak=$(awk -v t="$threads" -v w="$width" -v mhz="$mhz" 'BEGIN {printf "%.1f", t * 2 * w * 2 * mhz / 1000}')

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

echo "model: $model"
echo "products: $products, KV cache: $kv_cache, depth: $depth, threads: $threads, repetitions: $reps, clock: ${mhz} MHz, fp32 peak: $peak GFLOP/s ($isa)"
echo "load average before: $(loadavg)"

field() {  # field NAME <<< '{"a":1,...}'  -> the number after "NAME":
    sed -E "s/.*\"$1\":([-0-9.eE+]+).*/\1/"
}

kindred_out=$("$bench" "$model" --threads "$threads" --pp 512 --tg 128 --reps "$reps" --products "$products" \
    --kv-cache "$kv_cache" --depth "$depth")
kindred_load=$(loadavg)
k_paths=$(grep '"cpu_paths"' <<<"$kindred_out" | sed -E 's/.*"cpu_paths":"([^"]*)".*/\1/')
k_pp=$(grep '"pp512"' <<<"$kindred_out" | field tokens_per_second)
k_pp_sd=$(grep '"pp512"' <<<"$kindred_out" | field stddev)
k_pp_gf=$(grep '"pp512"' <<<"$kindred_out" | field gflops)
k_tg=$(grep '"tg128"' <<<"$kindred_out" | field tokens_per_second)
k_tg_sd=$(grep '"tg128"' <<<"$kindred_out" | field stddev)
k_tg_gf=$(grep '"tg128"' <<<"$kindred_out" | field gflops)
k_tg_bytes=$(grep '"tg128"' <<<"$kindred_out" | field bytes_per_token)
k_tg_gbs=$(grep '"tg128"' <<<"$kindred_out" | field read_gb_per_second)
k_tg_frac=$(grep '"tg128"' <<<"$kindred_out" | field fraction_of_bandwidth)
bw_1=$(grep '"read_bandwidth"' <<<"$kindred_out" | grep '"threads":1}' | field gb_per_second)
bw_t=$(grep '"read_bandwidth"' <<<"$kindred_out" | grep "\"threads\":$threads}" | field gb_per_second)

l_pp="-"; l_tg="-"; l_pp_sd=""; l_tg_sd=""
if [[ -n "$llama_bench" ]]; then
    # CSV columns are named in the header; pick avg_ts/stddev_ts of the pp and tg rows.
    # shellcheck disable=SC2086  # LLAMA_BENCH_ARGS is a list of words
    llama_csv=$("$llama_bench" -m "$model" -t "$threads" -p 512 -n 128 -r "$reps" ${LLAMA_BENCH_ARGS:-} -o csv 2>/dev/null) || {
        echo "llama-bench failed (exit $?) on $model with arguments '${LLAMA_BENCH_ARGS:-}' (see bench/llama_bench.sh)" >&2
        exit 1
    }
    echo "llama-bench extra arguments: ${LLAMA_BENCH_ARGS:-none}"
    llama_load=$(loadavg)
    # Which CPU backend llama.cpp ran (its build's ggml CPU variant and features), for the record.
    l_info=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i }; next }
        NR == 2 { gsub(/"/, ""); print "backend " $col["backends"] ", build " $col["build_commit"] }' <<<"$llama_csv")
    read -r l_pp l_pp_sd l_tg l_tg_sd < <(awk -F, '
        NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i }; next }
        { gsub(/"/, "") ; if ($col["n_prompt"] > 0) { pp = $col["avg_ts"]; ppsd = $col["stddev_ts"] }
                          else { tg = $col["avg_ts"]; tgsd = $col["stddev_ts"] } }
        END { print pp, ppsd, tg, tgsd }' <<<"$llama_csv")
fi

# Peak RSS of a short chat: three piped user lines, greedy, 48 tokens per reply.
rss_kb=$(printf 'Hi! How are you today?\nI had a rough day at work.\nThanks for listening.\n' |
    /usr/bin/time -v "$kindred" chat --model "$model" --threads "$threads" --products "$products" --kv-cache "$kv_cache" --temperature 0 --max-tokens 48 \
        2>&1 >/dev/null | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')

echo
printf '| test  | Kindred tok/s        | llama.cpp tok/s      | Kindred GFLOP/s (%% of %s peak) |\n' "$peak"
printf '| ----- | -------------------- | -------------------- | ------------------------------ |\n'
row() {  # row TEST KINDRED_TS KINDRED_SD KINDRED_GFLOPS LLAMA_TS LLAMA_SD
    local pct llama
    pct=$(awk -v g="$4" -v p="$peak" 'BEGIN {printf "%.1f", 100 * g / p}')
    llama="-"
    [[ "$5" == "-" ]] || llama=$(awk -v t="$5" -v s="$6" 'BEGIN {printf "%8.2f +- %-7.2f", t, s}')
    printf '| %-5s | %8.2f +- %-7.2f | %-20s | %8.2f (%s%%) |\n' "$1" "$2" "$3" "$llama" "$4" "$pct"
}
row pp512 "$k_pp" "$k_pp_sd" "$k_pp_gf" "$l_pp" "$l_pp_sd"
row tg128 "$k_tg" "$k_tg_sd" "$k_tg_gf" "$l_tg" "$l_tg_sd"
echo
awk -v b1="$bw_1" -v bt="$bw_t" -v t="$threads" -v bytes="$k_tg_bytes" -v gbs="$k_tg_gbs" -v frac="$k_tg_frac" 'BEGIN {
    printf "read bandwidth (STREAM-like sum over 512 MiB): %.1f GB/s with 1 thread, %.1f GB/s with %d\n", b1, bt, t
    printf "decode (tg128): %.1f MB of weights + KV read per token = %.1f GB/s = %.0f%% of the %d-thread read bandwidth (goal >= 80%%)\n",
        bytes / 1e6, gbs, 100 * frac, t }'
echo "Kindred ran: $k_paths"
echo "load average after Kindred: $kindred_load${llama_load:+, after llama.cpp: $llama_load} (now: $(loadavg))"
[[ -z "${l_info:-}" ]] || echo "llama.cpp ran: $l_info"
if [[ -n "$rss_kb" ]]; then
    echo "kindred chat peak RSS: $((rss_kb / 1024)) MB (goal < 300 MB)"
else
    echo "kindred chat peak RSS: not measured (/usr/bin/time -v missing?)"
fi
