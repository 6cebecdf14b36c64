#!/usr/bin/env bash
# The one command of a GPU session for issue 5 (benchmarks/RESULTS.md, "Next run"). From the repository root,
# through the device tool, carrying the wheels:
#
#   run(command="bash benchmarks/device_run.sh", carry=[".whl"], timeout_s=600)
#
# What it does, in this order, in at most ~9 minutes of wall time (BUDGET_S + install + a margin):
#   1. prints the card, driver, torch and CPU count;
#   2. installs the carried diffusers wheel (.whl/*.whl) into /tmp/site: the device machine has torch,
#      transformers and accelerate but not diffusers;
#   3. runs benchmarks/gpu_bench.py once: the matrix-product ceiling, then every eager variant beside its
#      baseline (MSM, generation, Stage B), then the torch.compile variants, each in a child process killed
#      after COMPILE_TIMEOUT_S (an inductor smoke test first; order CHILD_ORDER); no variant starts after
#      BUDGET_S and the whole benchmark is killed at BUDGET_S + 60 whatever happens;
#   4. leaves in $OUT: gpu_bench.json (rewritten after every row, so a cut-off run still has its rows),
#      log (everything printed, the children's TORCH_LOGS and stack dumps included) and nvidia-smi.txt.
#
# Knobs (environment): BUDGET_S (default 450), COMPILE_TIMEOUT_S (180), CHILD_ORDER
# (smoke,generation,msm,stageb), BENCH_ARGS (extra gpu_bench.py arguments, e.g. "--only msm"; they come last,
# so they override), PYTHON (python3), WHEELS (.whl), SITE (/tmp/site).
set -uo pipefail

BUDGET_S="${BUDGET_S:-450}"
COMPILE_TIMEOUT_S="${COMPILE_TIMEOUT_S:-180}"
CHILD_ORDER="${CHILD_ORDER:-smoke,generation,msm,stageb}"
BENCH_ARGS="${BENCH_ARGS:-}"
HARD_S=$((BUDGET_S + 60))
# shellcheck source=benchmarks/device_common.sh
source "$(dirname "$0")/device_common.sh"

"$PYTHON" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda",
torch.version.cuda, "gpu", torch.cuda.is_available())' 2>&1 | tee -a "$LOG"

say "install the carried wheels into $SITE"
install_wheels required
"$PYTHON" -c 'import diffusers; print("diffusers", diffusers.__version__, "from", diffusers.__file__)' 2>&1 \
    | tee -a "$LOG" || { say "diffusers does not import"; exit 3; }

say "gpu_bench.py: budget ${BUDGET_S} s, compile children ${COMPILE_TIMEOUT_S} s each, order ${CHILD_ORDER}"
# At HARD_S: SIGTERM (gpu_bench kills its running child, saves the JSON and exits), SIGKILL 15 s later.
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
timeout -k 15 -s TERM "$HARD_S" "$PYTHON" -u benchmarks/gpu_bench.py --device cuda --json "$OUT/gpu_bench.json" \
    --budget-s "$BUDGET_S" --compile-timeout-s "$COMPILE_TIMEOUT_S" --child-order "$CHILD_ORDER" \
    --compile-debug $BENCH_ARGS 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
say "gpu_bench.py exit status ${status} (124 or 143: stopped at ${HARD_S} s; 137: killed 15 s later)"

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
say "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$status"
