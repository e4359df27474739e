# bench/llama_bench.sh — sourced by the run.sh scripts that put llama.cpp beside Kindred.
# LLAMA_BENCH_ARGS: extra llama-bench arguments for every run (split on spaces), e.g. `--repack 0`
# where llama.cpp's AMX weight repacking crashes (seen on a Xeon VM with AMX, llama.cpp from
# llama-cpp-python 0.3.36: SIGSEGV in libggml-cpu for a Q4_1 model).
# find_llama_bench prints the llama-bench of the llama.cpp checkout in LLAMA_CPP_DIR (build/bin/,
# bin/ or the folder itself), or nothing when LLAMA_CPP_DIR is unset or holds none.
find_llama_bench() {
    [[ -n "${LLAMA_CPP_DIR:-}" ]] || return 0
    local candidate
    for candidate in "$LLAMA_CPP_DIR/build/bin/llama-bench" "$LLAMA_CPP_DIR/bin/llama-bench" "$LLAMA_CPP_DIR/llama-bench"; do
        if [[ -x "$candidate" ]]; then echo "$candidate"; return 0; fi
    done
}
