#!/usr/bin/env bash
# The demo on a GPU: does `dreamdiffusion demo` run end to end on CUDA (the CLI picks CUDA when present), how long
# does it take there, and what does it score. From the repository root, through the device tool:
#
#   run(command="bash benchmarks/device_demo.sh", carry=[".whl"], timeout_s=...)
#
# .whl/ holds the wheels the device image lacks: diffusers, importlib_metadata, lazy_importer, mne, pooch, decorator,
# platformdirs, typer, pydantic, pydantic_core, typing_inspection, annotated_types (benchmarks/RESULTS.md, "Next run",
# says how to fetch them; without pydantic the CLI stops at its first line). In this order:
#   1. the card, torch, and the carried wheels installed into $SITE;
#   2. `demo --fast` of each recipe (seconds): a CUDA-only bug shows here, with its traceback, before any long run;
#   3. only if both passed: the full demo of each recipe at DEMO_SEED, each under DEMO_LIMIT_S, timed
#      (/usr/bin/time -v when present: wall and peak RSS);
#   4. $OUT: log (everything printed), demo_<recipe>.tgz (metrics.json, report.md and the report's figures of each
#      full run; not the benchmark or the checkpoints), nvidia-smi.txt.
# Knobs (environment): DEMO_SEED (359), DEMO_RECIPES ("modern paper"), DEMO_LIMIT_S (240), FAST_LIMIT_S (150),
# DEMO_FULL (1; 0: the fast runs only), PYTHON (python3), WHEELS (.whl), SITE (/tmp/site), WORK (/tmp/dd_demo).
set -uo pipefail

DEMO_SEED="${DEMO_SEED:-359}"
DEMO_RECIPES="${DEMO_RECIPES:-modern paper}"
DEMO_LIMIT_S="${DEMO_LIMIT_S:-240}"
FAST_LIMIT_S="${FAST_LIMIT_S:-150}"
DEMO_FULL="${DEMO_FULL:-1}"
WORK="${WORK:-/tmp/dd_demo}"
# shellcheck source=benchmarks/device_common.sh
source "$(dirname "$0")/device_common.sh"
install_wheels optional
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
"$PYTHON" -c 'import sys, torch, diffusers, transformers, mne; print("python", sys.version.split()[0], "torch",
torch.__version__, "cuda", torch.cuda.is_available(), "diffusers", diffusers.__version__, "transformers",
transformers.__version__, "mne", mne.__version__)' 2>&1 | tee -a "$LOG" || { say "imports failed"; exit 3; }

TIMER=()
if [ -x /usr/bin/time ]; then TIMER=(/usr/bin/time -v); fi

demo() {  # demo NAME LIMIT ARGS...: one demo run under a wall-clock limit; its status is the function's
    local name=$1 limit=$2
    shift 2
    say "demo $name: $*"
    local start=$(date +%s)
    timeout -k 10 -s TERM "$limit" "${TIMER[@]}" "$PYTHON" -m dreamdiffusion demo --output "$WORK/$name" \
        --overwrite "$@" 2>&1 | tee -a "$LOG"
    local status=${PIPESTATUS[0]}
    say "demo $name: exit ${status}, $(($(date +%s) - start)) s wall"
    return "$status"
}

ok=1
for recipe in $DEMO_RECIPES; do
    demo "fast_$recipe" "$FAST_LIMIT_S" --fast --recipe "$recipe" --seed 11 || ok=0
done
if [ "$ok" = 1 ] && [ "$DEMO_FULL" = 1 ]; then
    for recipe in $DEMO_RECIPES; do
        demo "$recipe" "$DEMO_LIMIT_S" --recipe "$recipe" --seed "$DEMO_SEED"
        # The report and its figures, not the benchmark's arrays or the checkpoints.
        (cd "$WORK/$recipe" 2>/dev/null && find . -maxdepth 3 \( -name '*.json' -o -name '*.md' -o -name '*.png' \
            -o -name '*.jsonl' \) -not -path './benchmark/*' -size -2M -print0 \
            | tar czf "$OUT/demo_$recipe.tgz" --null -T -) || say "nothing to pack for $recipe"
    done
elif [ "$ok" != 1 ]; then
    say "a fast demo failed: the full runs are skipped (the traceback is above)"
fi
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
say "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
[ "$ok" = 1 ]
