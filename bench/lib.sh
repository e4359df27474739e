# bench/lib.sh — what the side-by-side benchmark scripts share (sourced from the repository root):
# the model argument resolved to a file, checks that the benchmark is built and the Python peer can
# run, the load average, and one number read out of a one-line JSON result.

# resolve_model ARG -> the GGUF path (`default` is the embedded model); exits when it is missing.
resolve_model() {
    local model="$1"
    if [[ "$model" == default ]]; then
        model="${KINDRED_HOME:-$HOME/.cache/kindred}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    fi
    [[ -f "$model" ]] || { echo "model not found: $model (scripts/fetch-default-model fetches the default)" >&2; exit 1; }
    echo "$model"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

field() {  # field NAME <<< '{"a":1,...}'  -> the number after "NAME":
    sed -E "s/.*\"$1\": ?([-0-9.eE+]+).*/\1/"
}

require_built() {  # require_built PATH: exits when the benchmark program at PATH is not built
    [[ -x "$1" ]] || { echo "missing $1: build it first (cmake --build ${1%%/bench/*} --target $(basename "$1"))" >&2; exit 1; }
}

require_python() {  # require_python PYTHON MODULE...: exits when PYTHON cannot import every MODULE
    local python="$1" modules
    shift
    modules="$(IFS=,; echo "$*")"
    "$python" -c "import $modules" 2>/dev/null || { echo "$python lacks ${modules//,//} (set PYTHON)" >&2; exit 1; }
}
