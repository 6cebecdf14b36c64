# Sourced by the device scripts (device_run.sh, device_demo.sh): their shared set-up, in one place.
# Defines OUT, LOG, PYTHON, WHEELS, SITE, T0; say (a timed line, also into $LOG); prints the machine line;
# install_wheels required|optional: the carried wheels (.whl/*.whl; the device image lacks diffusers and more) into
# $SITE, then $SITE and src/ first on PYTHONPATH (the model files and the CLI import dreamdiffusion).
# Without wheels: "required" stops with status 2 and a line saying what to carry; "optional" uses what is installed.
OUT="${OUT:-/tmp/dd_device_out}"
mkdir -p "$OUT"
LOG="$OUT/log"
PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"
SITE="${SITE:-/tmp/site}"
T0=$(date +%s)

say() { echo "== $* (t=$(($(date +%s) - T0)) s)" | tee -a "$LOG"; }

say "machine: $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(getconf _NPROCESSORS_ONLN) CPUs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"

install_wheels() {
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        if [ "$1" = required ]; then
            say "no $WHEELS/*.whl here: call run with carry=[\".whl\"]"
            exit 2
        fi
        say "no $WHEELS/*.whl: using the installed packages"
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
        return 0
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl 2>&1 | tee -a "$LOG" || { say "pip install failed"; exit 3; }
    export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
}
